--[[
  dead-list — one page of the dead-letter set, newest first.

  KEYS[1]  dead zset   <prefix>:{<queue>}:dead

  ARGV[1]  queue key prefix <prefix>:{<queue>}:
  ARGV[2]  retention of dead records, ms (entries older than this are pruned first)
  ARGV[3]  offset (0 = the most recent death)
  ARGV[4]  page size

  Returns
  {'OK', total, {field, value, ...}, {field, value, ...}, ...}
    total: dead jobs in the set; then one job record (HGETALL order) per job of the page
]]

-- @include prune-dead

local dead_key, prefix = KEYS[1], ARGV[1]
local dead_retention, offset, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local cutoff = now - dead_retention
prune_dead(dead_key, cutoff)

local reply = {'OK', 0}
for _, id in ipairs(redis.call('ZREVRANGEBYSCORE', dead_key, '+inf', '(' .. cutoff,
  'LIMIT', offset, limit)) do
  local job = redis.call('HGETALL', prefix .. 'job:' .. id)
  if #job > 0 then
    table.insert(reply, job)
  else
    redis.call('ZREM', dead_key, id)
  end
end
reply[2] = redis.call('ZCOUNT', dead_key, '(' .. cutoff, '+inf')
return reply
