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

-- A job keeps its latest HISTORY_MAX history entries; each new one past them drops the oldest.
local HISTORY_MAX = 1000

local job_key, active_key, dead_key, events_key, stats_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, token, message, class = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local dead_retention, events_max, prefix = tonumber(ARGV[5]), ARGV[6], ARGV[7]

-- Dead-set entries past their retention, at most 1,000 per call: a large set that expired at
-- once (or a shorter DEAD_RETENTION) is dropped over many calls, not in one that blocks Redis.
local function prune_dead(cutoff)
  local old = redis.call('ZRANGEBYSCORE', dead_key, '-inf', cutoff, 'LIMIT', 0, 1000)
  if #old > 0 then redis.call('ZREM', dead_key, unpack(old)) end
end

-- The lease is not this token's. When this token's own call ended it (that call's reply was
-- lost and it is being sent again), the reply says what that call did.
local function lease_lost(state)
  local ended = redis.call('HGET', job_key, 'ended_lease')
  local sep = ended and string.find(ended, ':', 1, true)
  if sep and string.sub(ended, sep + 1) == token then
    return {'LEASE_LOST', state, string.sub(ended, 1, sep - 1)}
  end
  return {'LEASE_LOST', state}
end

local state, lease_token, attempts = unpack(redis.call('HMGET', job_key, 'state', 'lease_token', 'attempts'))
if not state then return {'NOT_FOUND'} end
if state ~= 'active' or lease_token ~= token then return lease_lost(state) end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

redis.call('HSET', job_key, 'state', 'dead', 'finished_at', now, 'updated_at', now,
  'last_error', cjson.encode({message = message, class = class, at = now}), 'ended_lease', 'dead:' .. token)
redis.call('HDEL', job_key, 'lease_token', 'lease_deadline')
redis.call('ZREM', active_key, id)
redis.call('DEL', prefix .. 'lease:' .. token)
redis.call('PEXPIRE', job_key, dead_retention)
redis.call('ZADD', dead_key, now, id)
prune_dead(now - dead_retention)

local n = redis.call('HINCRBY', job_key, 'hn', 1)
if n > HISTORY_MAX then redis.call('HDEL', job_key, 'h:' .. (n - HISTORY_MAX)) end
redis.call('HSET', job_key, 'h:' .. n,
  cjson.encode({at = now, state = 'dead', attempt = tonumber(attempts), error = message}))
redis.call('XADD', events_key, 'MAXLEN', '~', events_max, '*', 'job', id, 'state', 'dead', 'at', now)
redis.call('HINCRBY', stats_key, 'dead', 1)
local bucket = prefix .. 'tp:' .. math.floor(now / 60000)
if redis.call('HINCRBY', bucket, 'dead', 1) == 1 then redis.call('PEXPIRE', bucket, 900000) end

return {'DEAD', now}
