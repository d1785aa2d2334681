--[[
  purge — delete dead jobs for good, with their idempotency records (their keys are free again).

  KEYS[1]  dead zset    <prefix>:{<queue>}:dead
  KEYS[2]  stats hash   <prefix>:{<queue>}:stats

  ARGV[1]  queue key prefix <prefix>:{<queue>}:
  ARGV[2]  job id, or '' for the oldest dead jobs
  ARGV[3]  with ARGV[2] = '': how many at most
  ARGV[4]  with ARGV[2] = '': only jobs dead at this time (epoch ms) or before; '' for now

  A job's idempotency record goes only while it still names that job: once it has expired, the
  same key may belong to a newer job.

  Returns
  {'PURGED', count, examined, up_to}
                          as redrive's: examined entries, and the time ARGV[4] stood for
  {'NOT_FOUND'}           (one id) no such job (its dead-set entry, if any, is removed)
  {'NOT_DEAD', state}     (one id) the job is not dead: nothing was changed
]]

-- @include args

local dead_key, stats_key = KEYS[1], KEYS[2]
local prefix, one, up_to = ARGV[1], ARGV[2], ARGV[4]
if one == '' then
  check_integer(3, 1)
  check_optional_integer(4, 0)
end

if up_to == nil or up_to == '' then
  local time = redis.call('TIME')
  up_to = string.format('%d', tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
end

local ids
if one ~= '' then
  local state = redis.call('HGET', prefix .. 'job:' .. one, 'state')
  if not state then
    -- A dead record can expire before its entry is pruned (a longer DEAD_RETENTION now).
    redis.call('ZREM', dead_key, one)
    return {'NOT_FOUND'}
  end
  if state ~= 'dead' then return {'NOT_DEAD', state} end
  ids = {one}
else
  -- ARGV[3] as it came: checked decimal text, which Redis reads without Lua formatting a number.
  ids = redis.call('ZRANGEBYSCORE', dead_key, '-inf', up_to, 'LIMIT', '0', ARGV[3])
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
-- Not into a deleted queue (a record can outlive its dead-set entry): stats' existence is the queue's.
if count > 0 and redis.call('EXISTS', stats_key) == 1 then
  redis.call('HINCRBY', stats_key, 'purged', count)
end
return {'PURGED', count, #ids, up_to}
