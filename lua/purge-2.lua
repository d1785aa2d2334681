--[[
  purge — delete dead jobs for good, with their idempotency records (their keys are free again).

  KEYS[1]  dead zset    <prefix>:{<queue>}:dead
  KEYS[2]  stats hash   <prefix>:{<queue>}:stats

  ARGV[1]  queue key prefix <prefix>:{<queue>}:
  ARGV[2]  job id, or '' for the oldest dead jobs
  ARGV[3]  with ARGV[2] = '': how many at most

  A job's idempotency record goes only while it still names that job: once it has expired, the
  same key may belong to a newer job.

  Returns
  {'PURGED', count, examined}   examined: dead-set entries taken (with ARGV[2] = '', fewer than
                                ARGV[3] means the set is empty; entries of expired records count
                                here, not in count)
  {'NOT_FOUND'}           (one id) no such job
  {'NOT_DEAD', state}     (one id) the job is not dead: nothing was changed
]]

local dead_key, stats_key = KEYS[1], KEYS[2]
local prefix, one, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])

local ids
if one ~= '' then
  local state = redis.call('HGET', prefix .. 'job:' .. one, 'state')
  if not state then return {'NOT_FOUND'} end
  if state ~= 'dead' then return {'NOT_DEAD', state} end
  ids = {one}
else
  ids = redis.call('ZRANGE', dead_key, 0, limit - 1)
end

local count = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', dead_key, id)
  local key = prefix .. 'job:' .. id
  local state, client, idempotency_key = unpack(redis.call('HMGET', key, 'state', 'client', 'idempotency_key'))
  if state == 'dead' then
    if client and idempotency_key then
      local idem_key = prefix .. 'idem:' .. client .. ':' .. idempotency_key
      local record = redis.call('GET', idem_key)
      if record and string.match(record, ':([^:]*)$') == id then redis.call('DEL', idem_key) end
    end
    redis.call('DEL', key)
    count = count + 1
  end
end
if count > 0 then redis.call('HINCRBY', stats_key, 'purged', count) end
return {'PURGED', count, #ids}
