--[[
  redrive — put dead jobs back in their ready list with their attempts reset.

  KEYS[1]  dead zset        <prefix>:{<queue>}:dead
  KEYS[2]  wake list        <prefix>:{<queue>}:wake
  KEYS[3]  events stream    <prefix>:{<queue>}:events
  KEYS[4]  stats hash       <prefix>:{<queue>}:stats

  ARGV[1]  queue key prefix <prefix>:{<queue>}:
  ARGV[2]  job id, or '' for the oldest dead jobs
  ARGV[3]  with ARGV[2] = '': how many at most
  ARGV[4]  approximate maximum length of the events stream
  ARGV[5]  with ARGV[2] = '': only jobs dead at this time (epoch ms) or before; '' for now

  A redriven job is queued again with attempts = 0, keeps its last_error, and no longer expires:
  neither its record (retention) nor the job itself (expires_at, the producer's ttl_ms; the
  operator asked for it to run).

  Returns
  {'REDRIVEN', count, examined, up_to}
                          examined: dead-set entries taken (with ARGV[2] = '', fewer than
                          ARGV[3] means none dead by up_to are left; entries of expired records
                          count here, not in count); up_to: ARGV[5], or the time it stood for.
                          Passing it to the next call of a series redrives what was dead when
                          the series began: a job that dies again meanwhile stays dead.
  {'REDRIVEN', 1, 1, up_to, field1, value1, ...}
                          (one id) done; then the job record as this call left it (HGETALL
                          order), since a worker may lease it right after
  {'NOT_FOUND'}           (one id) no such job (its dead-set entry, if any, is removed)
  {'NOT_DEAD', state}     (one id) the job is not dead: nothing was changed
]]

-- @include args
-- @include transition
-- @include ready
-- @include wake

local dead_key, wake_key, events_key, stats_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, one, events_max, up_to = ARGV[1], ARGV[2], ARGV[4], ARGV[5]
check_integer(4, 1)
if one == '' then
  check_integer(3, 1)
  check_optional_integer(5, 0)
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if up_to == nil or up_to == '' then up_to = string.format('%d', now) end

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
  local state, priority = unpack(redis.call('HMGET', key, 'state', 'priority'))
  if state == 'dead' then
    redis.call('HSET', key, 'state', 'queued', 'attempts', 0, 'run_at', now, 'updated_at', now)
    redis.call('HDEL', key, 'finished_at', 'expires_at')
    redis.call('PERSIST', key)
    push_ready(prefix, id, priority, false)
    record_transition(key, events_key, events_max, id, {at = now, state = 'queued', reason = 'redrive'})
    count = count + 1
  end
end
if count > 0 then
  redis.call('HINCRBY', stats_key, 'redriven', count)
  wake(wake_key, count)
end
local reply = {'REDRIVEN', count, #ids, up_to}
if one ~= '' then
  -- The record as this call left it: a worker woken by it may lease the job right after.
  for _, value in ipairs(redis.call('HGETALL', prefix .. 'job:' .. one)) do
    reply[#reply + 1] = value
  end
end
return reply
