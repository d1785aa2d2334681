--[[
  retry — a job failed transiently: run it again after a back-off while attempts remain,
  else it is dead.

  KEYS[1]  job hash         <prefix>:{<queue>}:job:<id>
  KEYS[2]  active zset      <prefix>:{<queue>}:active
  KEYS[3]  scheduled zset   <prefix>:{<queue>}:scheduled
  KEYS[4]  dead zset        <prefix>:{<queue>}:dead
  KEYS[5]  wake list        <prefix>:{<queue>}:wake
  KEYS[6]  events stream    <prefix>:{<queue>}:events
  KEYS[7]  stats hash       <prefix>:{<queue>}:stats

  ARGV[1]  job id
  ARGV[2]  lease token from reserve
  ARGV[3]  error message
  ARGV[4]  error class
  ARGV[5]  delay the worker asks for, ms (used as it is, no jitter); -1 = the job's back-off policy
  ARGV[6]  a uniformly random number in [0, 1), for jitter
  ARGV[7]  retention of dead records, ms
  ARGV[8]  approximate maximum length of the events stream
  ARGV[9]  queue key prefix <prefix>:{<queue>}:
  ARGV[10] retention of finished (expired) job records, ms

  Back-off policy (job fields backoff_*), for attempt n (the attempt that just failed):
    exponential: min(backoff_max_delay_ms, backoff_delay_ms * 2^(n-1))
    fixed:       backoff_delay_ms
    with backoff_jitter = 1, the delay d becomes d/2 + random * d/2 (the upper half of d).

  Returns
  {'SCHEDULED', run_at}    runs again at run_at
  {'QUEUED', run_at}       runs again now (a delay of 0)
  {'DEAD', finished_at}    that was the last attempt
  {'EXPIRED', finished_at} attempts remain, but the job's expires_at (the producer's ttl_ms)
                           comes before it would run again: expired now, not scheduled to expire
  {'NOT_FOUND'}
  {'LEASE_LOST', state}    as for ack: nothing was changed
  {'LEASE_LOST', state, ended_as}
                           as above, but this token's own earlier call ended the lease (its
                           reply was lost): ended_as is the state that call left the job in
]]

-- @include args
-- @include transition
-- @include ready
-- @include prune-dead
-- @include wake
-- @include lease-lost
-- @include throughput

local job_key, active_key, scheduled_key, dead_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local wake_key, events_key, stats_key = KEYS[5], KEYS[6], KEYS[7]
local id, token, message, class = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local requested, random = check_integer(5, -1), check_fraction(6)
local dead_retention, events_max, prefix = check_integer(7, 1), ARGV[8], ARGV[9]
local job_retention = ARGV[10]
check_integer(8, 1)
check_integer(10, 1)

local job = redis.call('HMGET', job_key, 'state', 'lease_token', 'attempts', 'max_attempts', 'priority',
  'backoff_type', 'backoff_delay_ms', 'backoff_max_delay_ms', 'backoff_jitter', 'expires_at')
local state, lease_token = job[1], job[2]
if not state then return {'NOT_FOUND'} end
if state ~= 'active' or lease_token ~= token then return lease_lost(job_key, token, state) end
local attempts, max_attempts, priority = tonumber(job[3]), tonumber(job[4]), job[5]

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local function record(entry) record_transition(job_key, events_key, events_max, id, entry) end
local function count(field) count_transition(stats_key, prefix, now, field) end

redis.call('HDEL', job_key, 'lease_token', 'lease_deadline')
redis.call('ZREM', active_key, id)
redis.call('DEL', prefix .. 'lease:' .. token)
redis.call('HSET', job_key, 'last_error', cjson.encode({message = message, class = class, at = now}),
  'updated_at', now)

if attempts >= max_attempts then
  redis.call('HSET', job_key, 'state', 'dead', 'finished_at', now, 'ended_lease', 'dead:' .. token)
  redis.call('PEXPIRE', job_key, dead_retention)
  redis.call('ZADD', dead_key, now, id)
  prune_dead(dead_key, now - dead_retention)
  record({at = now, state = 'dead', attempt = attempts, error = message})
  count('dead')
  return {'DEAD', now}
end

local delay = requested
if delay < 0 then
  delay = tonumber(job[7])
  if job[6] == 'exponential' then
    delay = math.min(tonumber(job[8]), delay * 2 ^ (attempts - 1))
  end
  if job[9] == '1' then
    delay = delay / 2 + random * delay / 2
  end
  delay = math.floor(delay)
end

local run_at = now + delay
local expires_at = tonumber(job[10])
if expires_at and expires_at <= run_at then
  redis.call('HSET', job_key, 'state', 'expired', 'finished_at', now, 'ended_lease', 'expired:' .. token)
  redis.call('PEXPIRE', job_key, job_retention)
  record({at = now, state = 'expired', attempt = attempts, error = message})
  count('expired')
  return {'EXPIRED', now}
end
count('retried')
if delay <= 0 then
  redis.call('HSET', job_key, 'state', 'queued', 'run_at', now, 'ended_lease', 'queued:' .. token)
  push_ready(prefix, id, priority, false)
  wake(wake_key, 1)
  record({at = now, state = 'queued', attempt = attempts, error = message, delay_ms = 0})
  return {'QUEUED', now}
end

redis.call('HSET', job_key, 'state', 'scheduled', 'run_at', run_at, 'ended_lease', 'scheduled:' .. token)
redis.call('ZADD', scheduled_key, run_at, id)
if redis.call('ZRANGE', scheduled_key, 0, 0)[1] == id then wake(wake_key, 1) end
record({at = now, state = 'scheduled', attempt = attempts, error = message, delay_ms = delay})
return {'SCHEDULED', run_at}
