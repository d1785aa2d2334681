--[[
  heartbeat — a worker still holds a job: extend its lease, optionally report progress.

  KEYS[1]  job hash      <prefix>:{<queue>}:job:<id>
  KEYS[2]  active zset   <prefix>:{<queue>}:active

  ARGV[1]  job id
  ARGV[2]  lease token from reserve
  ARGV[3]  new lease duration from now, ms
  ARGV[4]  progress: JSON text, '' for no change

  A lease that ran out but was not reclaimed yet (no reserve ran since) is still held, and is
  extended.

  Returns
  {'OK', lease_deadline}
  {'NOT_FOUND'}
  {'LEASE_LOST', state}    the worker no longer holds the job: it should stop working on it
  {'PROGRESS_TOO_LARGE', max_bytes}
                           the progress is longer than max_bytes (64 KiB): nothing was changed,
                           the lease was not extended
]]

-- @include args

local PROGRESS_MAX_BYTES = 65536

local job_key, active_key = KEYS[1], KEYS[2]
local id, token, lease_ms, progress = ARGV[1], ARGV[2], check_integer(3, 1), ARGV[4]
check_json(4)

local state, lease_token = unpack(redis.call('HMGET', job_key, 'state', 'lease_token'))
if not state then return {'NOT_FOUND'} end
if state ~= 'active' or lease_token ~= token then return {'LEASE_LOST', state} end
if #progress > PROGRESS_MAX_BYTES then return {'PROGRESS_TOO_LARGE', PROGRESS_MAX_BYTES} end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local deadline = now + lease_ms

redis.call('HSET', job_key, 'lease_deadline', deadline, 'updated_at', now)
if progress ~= '' then redis.call('HSET', job_key, 'progress', progress) end
redis.call('ZADD', active_key, deadline, id)
return {'OK', deadline}
