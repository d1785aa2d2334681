--[[
  rate-limit — take request tokens from a client's fixed rate-limit window.

  KEYS[1]  window counter  <prefix>:ratelimit:<scope>:<client>

  ARGV[1]  window length, ms
  ARGV[2]  tokens to take (>= 1)

  The counter counts the tokens taken in the current window by every gateway; the window starts
  with the first take and ends when the key expires, or sooner when a take asks for a shorter
  window than the one left (the count stays). A gateway takes tokens in chunks and hands
  them to requests one by one: a token numbered above the limit is a refusal.

  Returns
  {count, ttl_ms}   the counter after this take (the tokens taken are count - n + 1 .. count)
                    and the ms left in the window, at least 1
]]

-- @include args

local key, window, n = KEYS[1], check_integer(1, 1), check_integer(2, 1)

local count = redis.call('INCRBY', key, n)
local ttl = -1
if count > n then ttl = redis.call('PTTL', key) end
-- A new window (or a counter that lost its expiry): the window starts now. So it does after a
-- counter left by a longer window (the limit was changed, or a gateway of a rolling deploy still
-- has the old one): no window outlasts the length asked for; its count is kept.
if ttl < 0 or ttl > window then
  redis.call('PEXPIRE', key, window)
  ttl = window
end
-- PTTL says 0 in the window's last millisecond; the window has not ended yet.
return {count, math.max(ttl, 1)}
