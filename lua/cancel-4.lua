--[[
  cancel — withdraw a job that has not started.

  KEYS[1]  job hash         <prefix>:{<queue>}:job:<id>
  KEYS[2]  scheduled zset   <prefix>:{<queue>}:scheduled
  KEYS[3]  events stream    <prefix>:{<queue>}:events
  KEYS[4]  stats hash       <prefix>:{<queue>}:stats

  ARGV[1]  job id
  ARGV[2]  queue key prefix <prefix>:{<queue>}:
  ARGV[3]  retention of the finished record, ms
  ARGV[4]  approximate maximum length of the events stream

  Only queued and scheduled jobs can be canceled. A queued job is removed from its ready list
  (LREM: linear in the list's length).

  Returns
  {'CANCELED', finished_at}
  {'NOT_FOUND'}
  {'NOT_CANCELABLE', state}   active or finished: nothing was changed
]]

-- @include args
-- @include transition

local job_key, scheduled_key, events_key, stats_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, prefix, retention, events_max = ARGV[1], ARGV[2], check_integer(3, 1), ARGV[4]
check_integer(4, 1)

local state, priority = unpack(redis.call('HMGET', job_key, 'state', 'priority'))
if not state then return {'NOT_FOUND'} end
if state == 'queued' then
  redis.call('LREM', prefix .. 'ready:' .. priority, -1, id)
elseif state == 'scheduled' then
  redis.call('ZREM', scheduled_key, id)
else
  return {'NOT_CANCELABLE', state}
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

redis.call('HSET', job_key, 'state', 'canceled', 'finished_at', now, 'updated_at', now)
redis.call('PEXPIRE', job_key, retention)
record_transition(job_key, events_key, events_max, id, {at = now, state = 'canceled'})
redis.call('HINCRBY', stats_key, 'canceled', 1)
return {'CANCELED', now}
