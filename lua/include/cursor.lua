--[[
  include cursor — position_after(key, score, id, newest_first): where the entry after a cursor
  (an entry's score and id, text) stands in a sorted set, 0-based, in ZRANGE order (lowest score
  first; ties by id bytes, lowest first) or, with newest_first, in ZREVRANGE order. While the
  cursor's entry is in the set with that score, right after it; when it has left or moved since,
  where it stood: after every entry that sorts before it (the entries tied at its score found by
  bisection: a number of reads that grows with the log of their count).
]]
-- Whether a sorts before b by bytes (Lua's own string comparison follows the server's locale).
local function bytes_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function position_after(key, score, id, newest_first)
  local rank = redis.call(newest_first and 'ZREVRANK' or 'ZRANK', key, id)
  if rank and redis.call('ZSCORE', key, id) == score then return rank + 1 end
  local first
  if newest_first then
    first = redis.call('ZCOUNT', key, '(' .. score, '+inf')
  else
    first = redis.call('ZCOUNT', key, '-inf', '(' .. score)
  end
  -- The entries tied at the cursor's score stand in the order of their ids' bytes (reversed,
  -- newest first): those before the cursor's id are found by bisection, one entry read per
  -- step, however many share the score (a batch scheduled for one instant, say).
  local range = newest_first and 'ZREVRANGE' or 'ZRANGE'
  local low, high = 0, redis.call('ZCOUNT', key, score, score)
  while low < high do
    local middle = math.floor((low + high) / 2)
    local tie = redis.call(range, key, first + middle, first + middle)[1]
    if tie ~= id and bytes_before(tie, id) ~= newest_first then
      low = middle + 1
    else
      high = middle
    end
  end
  return first + low
end
