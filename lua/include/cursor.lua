--[[
  include cursor — position_after(key, score, id, newest_first): where the entry after a cursor
  (an entry's score and id, text) stands in a sorted set, 0-based, in ZRANGE order (lowest score
  first; ties by id bytes, lowest first) or, with newest_first, in ZREVRANGE order. While the
  cursor's entry is in the set with that score, right after it; when it has left or moved since,
  where it stood: after every entry that sorts before it.
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
  local ahead
  if newest_first then
    ahead = redis.call('ZCOUNT', key, '(' .. score, '+inf')
  else
    ahead = redis.call('ZCOUNT', key, '-inf', '(' .. score)
  end
  for _, tie in ipairs(redis.call('ZRANGEBYSCORE', key, score, score)) do
    if tie ~= id and bytes_before(tie, id) ~= newest_first then ahead = ahead + 1 end
  end
  return ahead
end
