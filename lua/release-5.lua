--[[
  release — undo a lease whose reply could not be delivered (the caller of an HTTP reserve left
  before the job was sent to it): the job goes back to the front of its ready list, the attempt
  uncounted, as if it had not been reserved.

  KEYS[1]  job hash         <prefix>:{<queue>}:job:<id>
  KEYS[2]  active zset      <prefix>:{<queue>}:active
  KEYS[3]  wake list        <prefix>:{<queue>}:wake
  KEYS[4]  events stream    <prefix>:{<queue>}:events
  KEYS[5]  stats hash       <prefix>:{<queue>}:stats

  ARGV[1]  queue key prefix <prefix>:{<queue>}:
  ARGV[2]  job id
  ARGV[3]  lease token
  ARGV[4]  lease deadline the reserve returned, epoch ms
  ARGV[5]  approximate maximum length of the events stream

  Only that very grant is undone: the job must be active under this token with this deadline.
  A reserve sent again with the token sets a later deadline, so a lease a caller received since
  is kept.

  Returns
  {'RELEASED', attempts}   the job is queued again; attempts = its attempts now
  {'KEPT', state}          not this grant's any more (or the record is gone: state ''): nothing
                           was changed
]]

-- @include args
-- @include transition
-- @include ready
-- @include wake

local job_key, active_key, wake_key, events_key, stats_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix, id, token, deadline, events_max = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
check_integer(4, 0)
check_integer(5, 1)

local state, held_by, held_until, attempts, priority = unpack(redis.call('HMGET', job_key,
  'state', 'lease_token', 'lease_deadline', 'attempts', 'priority'))
if state ~= 'active' or held_by ~= token or held_until ~= deadline then
  return {'KEPT', state or ''}
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local attempt = tonumber(attempts)

redis.call('HDEL', job_key, 'lease_token', 'lease_deadline')
-- Undoing the first attempt leaves a job never started; a later one keeps what it had.
if attempt == 1 then redis.call('HDEL', job_key, 'started_at', 'worker') end
redis.call('HSET', job_key, 'state', 'queued', 'attempts', attempt - 1, 'updated_at', now)
redis.call('ZREM', active_key, id)
redis.call('DEL', prefix .. 'lease:' .. token)
-- It was next in line when it was leased: it goes back in front of whatever came since.
push_ready(prefix, id, priority, true)

record_transition(job_key, events_key, events_max, id,
  {at = now, state = 'queued', attempt = attempt, reason = 'released'})
redis.call('HINCRBY', stats_key, 'released', 1)

-- A worker may be idle now that the job is back.
wake(wake_key, 1)
return {'RELEASED', attempt - 1}
