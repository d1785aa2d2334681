--[[
  include prune-dead — prune_dead(dead_key, cutoff): drop dead-set entries scored at or before
  cutoff (past their retention), at most 1,000 per call: a large set that expired at once (or a
  shorter DEAD_RETENTION) is dropped over many calls, not in one that blocks Redis.
]]
local function prune_dead(dead_key, cutoff)
  local old = redis.call('ZRANGEBYSCORE', dead_key, '-inf', cutoff, 'LIMIT', 0, 1000)
  if #old > 0 then redis.call('ZREM', dead_key, unpack(old)) end
end
