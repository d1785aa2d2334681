--[[
  delete-queue — remove a queue that holds no job: its counters, events, pause flag and wake-ups.

  KEYS[1]  scheduled zset   <prefix>:{<queue>}:scheduled
  KEYS[2]  active zset      <prefix>:{<queue>}:active
  KEYS[3]  dead zset        <prefix>:{<queue>}:dead
  KEYS[4]  stats hash       <prefix>:{<queue>}:stats
  KEYS[5]  events stream    <prefix>:{<queue>}:events
  KEYS[6]  wake list        <prefix>:{<queue>}:wake
  KEYS[7]  paused flag      <prefix>:{<queue>}:paused

  ARGV[1]  queue key prefix <prefix>:{<queue>}:
  ARGV[2]  retention of dead records, ms (older dead entries are pruned first, as counts does)

  A queue is empty when none of its jobs is queued, scheduled, active or dead. Records of
  finished jobs and idempotency records are left to expire with their retention: a status read
  or a replay within it still finds its job. Deleting the stats hash makes the next enqueue
  count the queue's first job again, which tells the caller to register the queue at once.
  The event stream is trimmed to nothing, not deleted: it keeps its last id and its count of
  entries ever added, so the ids of a queue made again under the name go on growing, and a
  watcher who missed the entries trimmed here is told of the gap.

  Returns
  {'DELETED'}
  {'NOT_EMPTY', queued, scheduled, active, dead}   nothing was changed
]]

-- @include args
-- @include prune-dead
-- @include throughput

local scheduled_key, active_key, dead_key, stats_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local events_key, wake_key, paused_key = KEYS[5], KEYS[6], KEYS[7]
local prefix, dead_retention = ARGV[1], check_integer(2, 1)

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local cutoff = now - dead_retention
prune_dead(dead_key, cutoff)

local queued = 0
for priority = 0, 9 do
  queued = queued + redis.call('LLEN', prefix .. 'ready:' .. priority)
end
local scheduled = redis.call('ZCARD', scheduled_key)
local active = redis.call('ZCARD', active_key)
local function dead_count() return redis.call('ZCOUNT', dead_key, '(' .. cutoff, '+inf') end
local dead = dead_count()
if queued + scheduled + active == 0 and dead > 0 then
  -- Entries whose record expired first (DEAD_RETENTION lengthened since) or was evicted are
  -- no jobs: dropped here, as a listing drops them, up to 1,000 per call.
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', dead_key, '(' .. cutoff, '+inf', 'LIMIT', 0, 1000)) do
    if redis.call('EXISTS', prefix .. 'job:' .. id) == 0 then redis.call('ZREM', dead_key, id) end
  end
  dead = dead_count()
end
if queued + scheduled + active + dead > 0 then
  return {'NOT_EMPTY', queued, scheduled, active, dead}
end

-- What the dead set still holds is past its retention.
redis.call('DEL', stats_key, wake_key, paused_key, dead_key)
redis.call('XTRIM', events_key, 'MAXLEN', '0')
-- Every per-minute throughput bucket that may still live.
local minute = math.floor(now / 60000)
for age = 0, THROUGHPUT_MINUTES do
  redis.call('DEL', throughput_bucket(prefix, minute - age))
end
return {'DELETED'}
