--[[
  include wake — wake(wake_key, n): push n wake-up tokens (at most 1,000) onto the wake list.
  Past 2,000 tokens the list is cut back to 1,000: tokens beyond the idle workers wake nobody,
  and workers kept busy reserve without taking any (PROTOCOL.md, "Waiting for work").
]]
local function wake(wake_key, n)
  local tokens = {}
  for i = 1, math.min(n, 1000) do tokens[i] = '1' end
  if #tokens > 0 and redis.call('LPUSH', wake_key, unpack(tokens)) > 2000 then
    redis.call('LTRIM', wake_key, '0', '999')
  end
end
