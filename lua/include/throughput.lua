--[[
  include throughput — the per-minute throughput buckets: throughput_bucket(prefix, minute), the
  key of the hash counting one epoch minute's transitions (<prefix>tp:<minute>), which lives
  THROUGHPUT_MINUTES; and count_transition(stats_key, prefix, now, field): add one to field in
  the queue's totals (stats_key) and in the current minute's bucket, returning the new total.
  counts reads the last two buckets; delete-queue removes every one that may still live.
  Counts reach Redis as text: a Lua number handed to redis.call is formatted with '%.14g', which
  costs Redis about ten times a string concatenation.
]]
local THROUGHPUT_MINUTES = 15
local THROUGHPUT_TTL_MS = string.format('%d', THROUGHPUT_MINUTES * 60000)

local function throughput_bucket(prefix, minute)
  return prefix .. 'tp:' .. string.format('%d', minute)
end

local function count_transition(stats_key, prefix, now, field)
  local total = redis.call('HINCRBY', stats_key, field, '1')
  local bucket = throughput_bucket(prefix, math.floor(now / 60000))
  if redis.call('HINCRBY', bucket, field, '1') == 1 then redis.call('PEXPIRE', bucket, THROUGHPUT_TTL_MS) end
  return total
end
