--[[
  status — read one job record together with the server clock.

  KEYS[1]  job hash   <prefix>:{<queue>}:job:<id>

  ARGV     none

  Returns
  {now}                          the job does not exist (never did, or its retention ended)
  {now, field1, value1, ...}     the job record (HGETALL order)

  `now` is the Redis server time in epoch ms, the clock every deadline in the record refers to.
]]

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local record = redis.call('HGETALL', KEYS[1])
table.insert(record, 1, now)
return record
