--[[
  dead-list — one page of the dead-letter set, newest first (by time of death, then by id,
  highest first, as ZREVRANGE orders ties).

  KEYS[1]  dead zset   <prefix>:{<queue>}:dead

  ARGV[1]  queue key prefix <prefix>:{<queue>}:
  ARGV[2]  retention of dead records, ms (entries older than this are pruned first)
  ARGV[3]  offset: entries to skip (from the most recent death, or from the cursor)
  ARGV[4]  page size
  ARGV[5]  cursor's time of death, ms ('' = no cursor: start at the most recent death)
  ARGV[6]  cursor's job id ('' = no cursor)

  Returns
  {'OK', total, start, next_score, next_id, {field, value, ...}, {field, value, ...}, ...}
    total: dead jobs in the set; start: the position of the page's first entry (0 = the most
    recent death); next_score, next_id: the last entry of the page, the cursor of the next one
    ('', '' when the set holds nothing after this page); then one job record (HGETALL order)
    per job of the page
]]

-- @include args
-- @include prune-dead
-- @include cursor

local dead_key, prefix = KEYS[1], ARGV[1]
local dead_retention, offset, limit = check_integer(2, 1), check_integer(3, 0), check_integer(4, 1)
local after_score, after_id = ARGV[5], ARGV[6]
check_cursor(5)

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local cutoff = now - dead_retention
prune_dead(dead_key, cutoff)

local start = offset
if after_id ~= '' then start = start + position_after(dead_key, after_score, after_id, true) end

local total = redis.call('ZCOUNT', dead_key, '(' .. cutoff, '+inf')
local page = redis.call('ZREVRANGEBYSCORE', dead_key, '+inf', '(' .. cutoff, 'WITHSCORES',
  'LIMIT', start, limit)
local reply = {'OK', 0, start, '', ''}
local gone = 0
for i = 1, #page, 2 do
  local id = page[i]
  local job = redis.call('HGETALL', prefix .. 'job:' .. id)
  if #job > 0 then
    table.insert(reply, job)
  else
    redis.call('ZREM', dead_key, id)
    gone = gone + 1
  end
end
if #page > 0 and start + #page / 2 < total then
  reply[4], reply[5] = page[#page], page[#page - 1]
end
reply[2] = total - gone
return reply
