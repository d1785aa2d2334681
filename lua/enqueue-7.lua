--[[
  enqueue — create a job, deduplicated by its idempotency record in the same atomic step.

  KEYS[1]  job hash             <prefix>:{<queue>}:job:<id>
  KEYS[2]  idempotency record   <prefix>:{<queue>}:idem:<client>:<key>  (untouched when ARGV[2] is '')
  KEYS[3]  ready list           <prefix>:{<queue>}:ready:<priority>
  KEYS[4]  scheduled zset       <prefix>:{<queue>}:scheduled
  KEYS[5]  events stream        <prefix>:{<queue>}:events
  KEYS[6]  wake list            <prefix>:{<queue>}:wake
  KEYS[7]  stats hash           <prefix>:{<queue>}:stats

  ARGV[1]  job id (the id in KEYS[1])
  ARGV[2]  request fingerprint; '' when the request has no idempotency key
  ARGV[3]  idempotency retention, ms
  ARGV[4]  delay, ms (0 = none)
  ARGV[5]  run_at, epoch ms (0 = use the delay)
  ARGV[6]  time to live from now, ms (0 = never expires)
  ARGV[7]  maximum queue depth, queued + scheduled (0 = unlimited)
  ARGV[8]  approximate maximum length of the events stream
  ARGV[9]  queue key prefix <prefix>:{<queue>}:
  ARGV[10] '1' when the queue registry is full: a queue without a stats hash (new, or deleted)
           takes no job; a replay is still answered. '0' otherwise
  ARGV[11] ... job fields as name, value pairs, stored verbatim (queue, type, payload, ...)

  Returns
  {'CREATED', state, created_at, run_at, expires_at, first}
                                                         expires_at is '' when the job never expires;
                                                         first is '1' for the queue's first job (its
                                                         stats hash was new: a new or deleted queue,
                                                         or one Redis lost), else ''
  {'REPLAYED', job_id, field1, value1, ...}              the existing job record (HGETALL order)
  {'CONFLICT', job_id}                                   the key was first used for another request
  {'QUEUE_FULL', depth}                                  queued + scheduled jobs already at the maximum
  {'EXPIRES_BEFORE_DUE', due_in_ms}                      the time to live ends before (or as) the job is due
                                                         (it could never run); nothing was written
  {'TOO_MANY_QUEUES'}                                    ARGV[10] is '1' and the queue has no stats hash;
                                                         nothing was written

  Time comes from the Redis server clock, so every gateway and worker shares one clock per queue.
]]

-- @include args
-- @include wake
-- @include throughput

local job_key, idem_key, ready_key, scheduled_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local events_key, wake_key, stats_key = KEYS[5], KEYS[6], KEYS[7]
local id, fingerprint, idem_ttl = ARGV[1], ARGV[2], ARGV[3]
local delay, run_at, ttl = check_integer(4, 0), check_integer(5, 0), check_integer(6, 0)
local max_depth, events_max, prefix = check_integer(7, 0), ARGV[8], ARGV[9]
local registry_full = ARGV[10] == '1'
check_integer(3, 1)
check_integer(8, 1)
check_choice(10, '0', '1')
local PRIORITIES = {'0', '1', '2', '3', '4', '5', '6', '7', '8', '9'}

if fingerprint ~= '' then
  local record = redis.call('GET', idem_key)
  if record then
    -- The id is after the last ':' (ids have none; a producer's fingerprint may).
    local first_fingerprint, first_id = string.match(record, '^(.*):([^:]*)$')
    -- A record whose job is gone (purged) no longer protects anything: the key is free again.
    if redis.call('EXISTS', prefix .. 'job:' .. first_id) == 1 then
      if first_fingerprint ~= fingerprint then
        return {'CONFLICT', first_id}
      end
      local existing = redis.call('HGETALL', prefix .. 'job:' .. first_id)
      table.insert(existing, 1, first_id)
      table.insert(existing, 1, 'REPLAYED')
      return existing
    end
  end
end

-- After the replay: a producer resending a request whose job exists is answered whatever else.
if registry_full and redis.call('EXISTS', stats_key) == 0 then
  return {'TOO_MANY_QUEUES'}
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
-- Numbers handed to redis.call are formatted with '%.14g', which costs Redis about ten times a
-- string concatenation: times travel as text made from TIME's own digits, or with '%d'.
local now_text = time[1] .. string.sub('00000' .. time[2], -6, -4)
local due = now + delay
if run_at > 0 then due = run_at end

-- Against this clock, not the producer's or the gateway's: a run_at near the TTL's end. Before
-- the depth: a job that could never run is refused for good, not asked to come back later.
if ttl > 0 and ttl <= due - now then
  return {'EXPIRES_BEFORE_DUE', due - now}
end

if max_depth > 0 then
  local depth = redis.call('ZCARD', scheduled_key)
  for _, priority in ipairs(PRIORITIES) do
    depth = depth + redis.call('LLEN', prefix .. 'ready:' .. priority)
  end
  if depth >= max_depth then
    return {'QUEUE_FULL', depth}
  end
end

local state, due_text = 'queued', now_text
if due > now then
  state, due_text = 'scheduled', string.format('%d', due)
else
  due = now
end

local entry = '{"at":' .. now_text .. ',"state":"' .. state .. '"}'
if state == 'queued' then
  -- Its place in line, as push_ready gives it (PROTOCOL.md, "Places in line").
  local seq = string.format('%d', redis.call('HINCRBY', stats_key, 'ready_seq', '1'))
  redis.call('HSET', job_key, 'id', id, 'state', state, 'attempts', '0', 'created_at', now_text,
    'run_at', due_text, 'updated_at', now_text, 'hn', '1', 'h:1', entry, 'ready_seq', seq, unpack(ARGV, 11))
else
  redis.call('HSET', job_key, 'id', id, 'state', state, 'attempts', '0', 'created_at', now_text,
    'run_at', due_text, 'updated_at', now_text, 'hn', '1', 'h:1', entry, unpack(ARGV, 11))
end
local expires_at = ''
if ttl > 0 then
  expires_at = now + ttl
  redis.call('HSET', job_key, 'expires_at', string.format('%d', expires_at))
end

if state == 'queued' then
  redis.call('LPUSH', ready_key, id)
  wake(wake_key, 1)
else
  redis.call('ZADD', scheduled_key, due_text, id)
  -- A blocked worker sleeps until the earliest due job; wake one if this job is now the earliest.
  if redis.call('ZRANGE', scheduled_key, 0, 0)[1] == id then wake(wake_key, 1) end
end

if fingerprint ~= '' then
  redis.call('SET', idem_key, fingerprint .. ':' .. id, 'PX', idem_ttl)
end
redis.call('XADD', events_key, 'MAXLEN', '~', events_max, '*', 'job', id, 'state', state, 'at', now_text)
local first = ''
if count_transition(stats_key, prefix, now, 'enqueued') == 1 then first = '1' end

return {'CREATED', state, now, due, expires_at, first}
