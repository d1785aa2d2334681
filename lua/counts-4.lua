--[[
  counts — a queue at a glance: jobs per waiting state, the oldest queued job, counters.

  KEYS[1]  scheduled zset   <prefix>:{<queue>}:scheduled
  KEYS[2]  active zset      <prefix>:{<queue>}:active
  KEYS[3]  dead zset        <prefix>:{<queue>}:dead
  KEYS[4]  stats hash       <prefix>:{<queue>}:stats

  ARGV[1]  queue key prefix <prefix>:{<queue>}:
  ARGV[2]  retention of dead records, ms (older dead entries are pruned first)

  Returns
  {'OK', now, queued, scheduled, active, dead, oldest_queued_created_at ('' if none),
   {stats field, value, ...}, {this minute's field, value, ...}, {last minute's field, value, ...},
   paused_at ('' if the queue is not paused)}
  The per-minute hashes (<prefix>:{<queue>}:tp:<epoch minute>) count enqueued, succeeded,
  retried, dead, expired and reclaimed jobs for throughput.
]]

-- @include args
-- @include prune-dead
-- @include throughput

local scheduled_key, active_key, dead_key, stats_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, dead_retention = ARGV[1], check_integer(2, 1)

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local cutoff = now - dead_retention
prune_dead(dead_key, cutoff)

local queued, oldest = 0, ''
for priority = 0, 9 do
  local list = prefix .. 'ready:' .. priority
  local length = redis.call('LLEN', list)
  if length > 0 then
    queued = queued + length
    local created = redis.call('HGET', prefix .. 'job:' .. redis.call('LINDEX', list, -1), 'created_at')
    if created and (oldest == '' or tonumber(created) < oldest) then oldest = tonumber(created) end
  end
end

local minute = math.floor(now / 60000)
return {
  'OK', now, queued, redis.call('ZCARD', scheduled_key), redis.call('ZCARD', active_key),
  redis.call('ZCOUNT', dead_key, '(' .. cutoff, '+inf'), oldest, redis.call('HGETALL', stats_key),
  redis.call('HGETALL', throughput_bucket(prefix, minute)),
  redis.call('HGETALL', throughput_bucket(prefix, minute - 1)),
  redis.call('GET', prefix .. 'paused') or '',
}
