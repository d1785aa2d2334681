--[[
  reserve — lease the next job of a queue to a worker.

  KEYS[1]  active zset      <prefix>:{<queue>}:active     (score = lease deadline)
  KEYS[2]  scheduled zset   <prefix>:{<queue>}:scheduled  (score = due time)
  KEYS[3]  dead zset        <prefix>:{<queue>}:dead       (score = time of death)
  KEYS[4]  wake list        <prefix>:{<queue>}:wake
  KEYS[5]  events stream    <prefix>:{<queue>}:events
  KEYS[6]  stats hash       <prefix>:{<queue>}:stats

  ARGV[1]  queue key prefix <prefix>:{<queue>}:
  ARGV[2]  worker id
  ARGV[3]  lease token: an unguessable value chosen by the caller for this reservation, sent
           again (with the same worker id) when the reply to a reserve never came
  ARGV[4]  lease duration, ms
  ARGV[5]  retention of finished (expired) job records, ms
  ARGV[6]  retention of dead job records, ms
  ARGV[7]  approximate maximum length of the events stream

  A token that already holds the lease of an active job of this worker (its reply was lost; the
  caller sent the same reserve again) gets that job again, lease renewed, attempt not counted
  again, its deadline later than the one it had: nothing else is done. One that holds the lease
  of another worker's active job is refused. A job leased here is
  findable by its token (<prefix>:{<queue>}:lease:<token> = id, expiring with the lease; ack,
  fail, retry and release delete it).

  Otherwise, in one atomic step: promote due scheduled jobs (up to 100), reclaim expired leases
  (up to 100; back to the front of their ready list, earliest deadline first, while attempts
  remain, else dead; one past its expires_at expires instead of going back), then pop the next
  job, highest priority first, skipping (and marking `expired`) jobs past their expires_at,
  count the attempt and lease the job. A paused queue (<prefix>:{<queue>}:paused set, see
  pause) gets the first two steps only and answers {'EMPTY', -1}.

  Returns
  {'JOB', 'id', id, 'queue', q, 'type', t, 'payload', json, 'attempts', n, 'max_attempts', m,
   'timeout_ms', ms|'', 'request_id', r|'', 'created_at', ms, 'priority', p,
   'lease_token', token, 'lease_deadline', ms}
  {'EMPTY', wait_ms}   nothing to run now; wait_ms = time until the next scheduled job is due or
                       the next lease runs out (0 = call again at once), -1 = nothing pending
  {'TOKEN_IN_USE'}     the token holds the lease of another worker's active job: nothing done
]]

-- @include args
-- @include transition
-- @include ready
-- @include prune-dead
-- @include wake
-- @include throughput

local active_key, scheduled_key, dead_key = KEYS[1], KEYS[2], KEYS[3]
local wake_key, events_key, stats_key = KEYS[4], KEYS[5], KEYS[6]
local prefix, worker, token = ARGV[1], ARGV[2], ARGV[3]
local lease_ms, retention, dead_retention = check_integer(4, 1), check_integer(5, 1), check_integer(6, 1)

local events_max = ARGV[7]
check_integer(7, 1)

local BATCH, BATCH_TEXT = 100, '100'
local SKIP_LIMIT = 1000
local PRIORITIES = {'9', '8', '7', '6', '5', '4', '3', '2', '1', '0'}

-- Numbers handed to redis.call or concatenated are formatted with '%.14g', which costs Redis
-- about ten times a string concatenation: the hot path passes text (`now_text`, '%d').
local function text(n) return string.format('%d', n) end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local now_text = time[1] .. string.sub('00000' .. time[2], -6, -4)

local JOB_FIELDS = {'state', 'expires_at', 'attempts', 'hn', 'queue', 'type',
  'payload', 'max_attempts', 'timeout_ms', 'request_id', 'created_at', 'priority'}

local function leased(id, job, attempts, deadline)
  return {
    'JOB', 'id', id, 'queue', job[5], 'type', job[6], 'payload', job[7], 'attempts', attempts,
    'max_attempts', job[8], 'timeout_ms', job[9] or '', 'request_id', job[10] or '',
    'created_at', job[11], 'priority', job[12], 'lease_token', token, 'lease_deadline', deadline,
  }
end

-- A reserve sent again: its first try leased a job whose reply never reached the caller.
local lease_key = prefix .. 'lease:' .. token
local held_id = redis.call('GET', lease_key)
if held_id then
  local key = prefix .. 'job:' .. held_id
  local holder = redis.call('HMGET', key, 'lease_token', 'worker', 'lease_deadline', 'state')
  if holder[1] == token and holder[4] == 'active' then
    -- Another worker's live lease: leasing a job under its token would take its lookup.
    if holder[2] ~= worker then return {'TOKEN_IN_USE'} end
    local job = redis.call('HMGET', key, unpack(JOB_FIELDS))
    -- Always later than the grant it renews, so a release of that grant (release) keeps this.
    local deadline = math.max(now + lease_ms, (tonumber(holder[3]) or 0) + 1)
    local deadline_text = text(deadline)
    redis.call('HSET', key, 'lease_deadline', deadline_text, 'updated_at', now_text)
    redis.call('ZADD', active_key, deadline_text, held_id)
    redis.call('PEXPIRE', lease_key, ARGV[4])
    return leased(held_id, job, tonumber(job[3]), deadline)
  end
end

local function record(key, id, entry) record_transition(key, events_key, events_max, id, entry) end
local function count(field) count_transition(stats_key, prefix, now, field) end

-- `lost`: a lease that ran out ({attempt, message, last_error}), told in the history as the
-- lease's other endings are.
local function expire(key, id, lost)
  redis.call('HSET', key, 'state', 'expired', 'finished_at', now, 'updated_at', now)
  local entry = {at = now, state = 'expired'}
  if lost then
    redis.call('HSET', key, 'last_error', lost.last_error)
    entry.attempt, entry.error = lost.attempt, lost.message
  end
  redis.call('PEXPIRE', key, retention)
  record(key, id, entry)
  count('expired')
end

local function is_past(expires_at)
  return expires_at and expires_at ~= '' and tonumber(expires_at) <= now
end

-- The first write, and one Redis refuses when out of memory (RPOP and ZREM, the first writes
-- otherwise, are allowed then, and after them every write is): with no memory for the ack, no
-- job is leased only to run again once its lease runs out. The lease step overwrites it.
redis.call('SET', lease_key, '', 'PX', ARGV[4])

-- Jobs this call made ready, by id: each deserves a wake-up unless this call takes it.
local moved, made_ready = 0, {}

-- Scheduled jobs whose time has come join the back of their ready list.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', scheduled_key, '-inf', now_text, 'LIMIT', '0', BATCH_TEXT)) do
  redis.call('ZREM', scheduled_key, id)
  local key = prefix .. 'job:' .. id
  local state, priority, expires_at = unpack(redis.call('HMGET', key, 'state', 'priority', 'expires_at'))
  if state == 'scheduled' then
    if is_past(expires_at) then
      expire(key, id)
    else
      redis.call('HSET', key, 'state', 'queued', 'updated_at', now)
      push_ready(prefix, id, priority, false)
      record(key, id, {at = now, state = 'queued'})
      moved, made_ready[id] = moved + 1, true
    end
  end
end

-- Leases that ran out: the worker died or hung. The attempt was counted at reserve. Those that
-- go back are put in front of their ready list after the loop, earliest deadline first.
local back = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', active_key, '-inf', now_text, 'LIMIT', '0', BATCH_TEXT)) do
  redis.call('ZREM', active_key, id)
  local key = prefix .. 'job:' .. id
  local state, attempts, max_attempts, priority, holder, expires_at = unpack(redis.call('HMGET', key,
    'state', 'attempts', 'max_attempts', 'priority', 'worker', 'expires_at'))
  if state == 'active' then
    local message = 'lease expired: worker ' .. (holder or '?') .. ' neither finished nor heartbeated'
    local last_error = cjson.encode({message = message, class = 'LeaseExpired', at = now})
    redis.call('HDEL', key, 'lease_token', 'lease_deadline')
    count('reclaimed')
    if tonumber(attempts) >= tonumber(max_attempts) then
      redis.call('HSET', key, 'state', 'dead', 'last_error', last_error, 'finished_at', now, 'updated_at', now)
      redis.call('PEXPIRE', key, dead_retention)
      redis.call('ZADD', dead_key, now, id)
      prune_dead(dead_key, now - dead_retention)
      record(key, id, {at = now, state = 'dead', attempt = tonumber(attempts), error = message})
      count('dead')
    elseif is_past(expires_at) then
      -- Past its TTL it would not be started again: it expires instead of queueing.
      expire(key, id, {attempt = tonumber(attempts), message = message, last_error = last_error})
    else
      redis.call('HSET', key, 'state', 'queued', 'last_error', last_error, 'updated_at', now)
      record(key, id, {at = now, state = 'queued', attempt = tonumber(attempts), error = message})
      back[#back + 1] = {id, priority}
      moved, made_ready[id] = moved + 1, true
    end
  end
end
-- They were taken before anything now waiting: back to the front of the line, the earliest
-- deadline at the very front.
for i = #back, 1, -1 do
  push_ready(prefix, back[i][1], back[i][2], true)
end

-- A paused queue leases nothing; idle workers wait until resume wakes them.
if redis.call('EXISTS', prefix .. 'paused') == 1 then
  redis.call('DEL', wake_key, lease_key)
  return {'EMPTY', -1}
end

-- The next job: priority 9 first, oldest first within a priority. (One LMPOP over the ten lists
-- costs more Redis instructions than a few RPOPs: measured, see bench/NOTES.md.)
local id, key, job
local skipped = 0
for _, priority in ipairs(PRIORITIES) do
  local list = prefix .. 'ready:' .. priority
  while skipped < SKIP_LIMIT do
    local candidate = redis.call('RPOP', list)
    if not candidate then break end
    local candidate_key = prefix .. 'job:' .. candidate
    local fields = redis.call('HMGET', candidate_key, unpack(JOB_FIELDS))
    if fields[1] == 'queued' and not is_past(fields[2]) then
      id, key, job = candidate, candidate_key, fields
      break
    end
    if fields[1] == 'queued' then expire(candidate_key, candidate) end
    skipped = skipped + 1
  end
  if id or skipped >= SKIP_LIMIT then break end
end

if not id then
  if skipped >= SKIP_LIMIT then
    -- More may be ready behind the skipped entries: this caller asks again at once, and the
    -- jobs made ready here wake as many idle workers.
    redis.call('DEL', lease_key)
    wake(wake_key, moved)
    return {'EMPTY', 0}
  end
  -- Nothing is ready: stale wake-up tokens would only cause idle wake-ups.
  redis.call('DEL', wake_key, lease_key)
  local wait = -1
  for _, zset in ipairs({scheduled_key, active_key}) do
    local head = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
    if head[2] then
      local until_head = math.max(0, tonumber(head[2]) - now)
      if wait < 0 or until_head < wait then wait = until_head end
    end
  end
  return {'EMPTY', wait}
end

-- The lease, the attempt and the history entry in one write (record() would take three).
local attempts = tonumber(job[3]) + 1
local attempts_text, n = text(attempts), text((tonumber(job[4]) or 0) + 1)
local deadline = now + lease_ms
local deadline_text = text(deadline)
local entry = '{"at":' .. now_text .. ',"state":"active","attempt":' .. attempts_text ..
  ',"worker":' .. cjson.encode(worker) .. '}'
redis.call('HSET', key, 'state', 'active', 'attempts', attempts_text, 'lease_token', token,
  'lease_deadline', deadline_text, 'worker', worker, 'started_at', now_text, 'updated_at', now_text,
  'hn', n, 'h:' .. n, entry)
if tonumber(n) > HISTORY_MAX then redis.call('HDEL', key, 'h:' .. (tonumber(n) - HISTORY_MAX)) end
redis.call('ZADD', active_key, deadline_text, id)
redis.call('SET', lease_key, id, 'PX', ARGV[4])
redis.call('XADD', events_key, 'MAXLEN', '~', events_max, '*', 'job', id, 'state', 'active', 'at', now_text)

-- Jobs this call made ready, but for the one it took (a job of higher priority may have been
-- waiting already): wake that many idle workers.
wake(wake_key, made_ready[id] and moved - 1 or moved)

return leased(id, job, attempts, deadline)
