--[[
  fail — a worker gives up on a job for good: it goes to the dead-letter set now,
  whatever attempts remain.

  KEYS[1]  job hash        <prefix>:{<queue>}:job:<id>
  KEYS[2]  active zset     <prefix>:{<queue>}:active
  KEYS[3]  dead zset       <prefix>:{<queue>}:dead
  KEYS[4]  events stream   <prefix>:{<queue>}:events
  KEYS[5]  stats hash      <prefix>:{<queue>}:stats

  ARGV[1]  job id
  ARGV[2]  lease token from reserve
  ARGV[3]  error message
  ARGV[4]  error class (the exception's class name, or any short label)
  ARGV[5]  retention of dead records, ms
  ARGV[6]  approximate maximum length of the events stream
  ARGV[7]  queue key prefix <prefix>:{<queue>}:

  Returns
  {'DEAD', finished_at}
  {'NOT_FOUND'}
  {'LEASE_LOST', state}    as for ack: nothing was changed
  {'LEASE_LOST', state, ended_as}
                           as above, but this token's own earlier call ended the lease (its
                           reply was lost): ended_as is the state that call left the job in
]]

-- @include args
-- @include transition
-- @include prune-dead
-- @include lease-lost
-- @include throughput

local job_key, active_key, dead_key, events_key, stats_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, token, message, class = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local dead_retention, events_max, prefix = check_integer(5, 1), ARGV[6], ARGV[7]
check_integer(6, 1)

local state, lease_token, attempts = unpack(redis.call('HMGET', job_key, 'state', 'lease_token', 'attempts'))
if not state then return {'NOT_FOUND'} end
if state ~= 'active' or lease_token ~= token then return lease_lost(job_key, token, state) end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

redis.call('HSET', job_key, 'state', 'dead', 'finished_at', now, 'updated_at', now,
  'last_error', cjson.encode({message = message, class = class, at = now}), 'ended_lease', 'dead:' .. token)
redis.call('HDEL', job_key, 'lease_token', 'lease_deadline')
redis.call('ZREM', active_key, id)
redis.call('DEL', prefix .. 'lease:' .. token)
redis.call('PEXPIRE', job_key, dead_retention)
redis.call('ZADD', dead_key, now, id)
prune_dead(dead_key, now - dead_retention)

record_transition(job_key, events_key, events_max, id,
  {at = now, state = 'dead', attempt = tonumber(attempts), error = message})
count_transition(stats_key, prefix, now, 'dead')

return {'DEAD', now}
