--[[
  include throughput — count_transition(stats_key, prefix, now, field): add one to field in the
  queue's totals (stats_key) and in the bucket of the current minute (<prefix>tp:<minute>, which
  lives 15 minutes: counts reads the last two, delete-queue removes them). Returns the new total.
  Counts reach Redis as text: a Lua number handed to redis.call is formatted with '%.14g', which
  costs Redis about ten times a string concatenation.
]]
local function count_transition(stats_key, prefix, now, field)
  local total = redis.call('HINCRBY', stats_key, field, '1')
  local bucket = prefix .. 'tp:' .. string.format('%d', math.floor(now / 60000))
  if redis.call('HINCRBY', bucket, field, '1') == 1 then redis.call('PEXPIRE', bucket, '900000') end
  return total
end
