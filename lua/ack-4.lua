--[[
  ack — a worker finished a job: it succeeded.

  KEYS[1]  job hash        <prefix>:{<queue>}:job:<id>
  KEYS[2]  active zset     <prefix>:{<queue>}:active
  KEYS[3]  events stream   <prefix>:{<queue>}:events
  KEYS[4]  stats hash      <prefix>:{<queue>}:stats

  ARGV[1]  job id
  ARGV[2]  lease token from reserve
  ARGV[3]  result: JSON text, '' for none
  ARGV[4]  retention of the finished record, ms
  ARGV[5]  approximate maximum length of the events stream
  ARGV[6]  queue key prefix <prefix>:{<queue>}:

  Returns
  {'OK', finished_at}
  {'NOT_FOUND'}            no such job
  {'LEASE_LOST', state}    the job is not active under this token (the lease ran out and the
                           job was re-queued, re-leased or finished): nothing was changed
  {'LEASE_LOST', state, ended_as}
                           as above, but this token's own earlier call ended the lease (its
                           reply was lost): ended_as is the state that call left the job in
  {'RESULT_TOO_LARGE', max_bytes}
                           the result is longer than max_bytes (1 MiB): nothing was changed
]]

-- @include args
-- @include transition
-- @include lease-lost
-- @include throughput

local RESULT_MAX_BYTES = 1048576

local job_key, active_key, events_key, stats_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, token, result, retention, events_max, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
check_json(3)
check_integer(4, 1)
check_integer(5, 1)

local state, lease_token, attempts, hn =
  unpack(redis.call('HMGET', job_key, 'state', 'lease_token', 'attempts', 'hn'))
if not state then return {'NOT_FOUND'} end
if state ~= 'active' or lease_token ~= token then return lease_lost(job_key, token, state) end
if #result > RESULT_MAX_BYTES then return {'RESULT_TOO_LARGE', RESULT_MAX_BYTES} end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
-- Numbers reach Redis as text made without '%.14g' formatting (costly; see reserve).
local now_text = time[1] .. string.sub('00000' .. time[2], -6, -4)

-- The new state and its history entry in one write.
local n = string.format('%d', (tonumber(hn) or 0) + 1)
local entry = '{"at":' .. now_text .. ',"state":"succeeded","attempt":' .. attempts .. '}'
local fields = {'state', 'succeeded', 'finished_at', now_text, 'updated_at', now_text, 'hn', n, 'h:' .. n, entry,
  'ended_lease', 'succeeded:' .. token}
if result ~= '' then
  fields[#fields + 1] = 'result'
  fields[#fields + 1] = result
end
redis.call('HSET', job_key, unpack(fields))
local dropped = {'lease_token', 'lease_deadline'}
if tonumber(n) > HISTORY_MAX then dropped[3] = 'h:' .. (tonumber(n) - HISTORY_MAX) end
redis.call('HDEL', job_key, unpack(dropped))
redis.call('ZREM', active_key, id)
redis.call('DEL', prefix .. 'lease:' .. token)
redis.call('PEXPIRE', job_key, retention)
redis.call('XADD', events_key, 'MAXLEN', '~', events_max, '*', 'job', id, 'state', 'succeeded', 'at', now_text)
count_transition(stats_key, prefix, now, 'succeeded')

return {'OK', now}
