--[[
  pause — hold back (or release) the delivery of a queue's jobs.

  KEYS[1]  paused flag   <prefix>:{<queue>}:paused   (value: when the queue was paused, ms)
  KEYS[2]  wake list     <prefix>:{<queue>}:wake

  ARGV[1]  queue key prefix <prefix>:{<queue>}:
  ARGV[2]  'pause' or 'resume'

  pause: sets the flag; a queue paused again keeps its first time. While it is set, reserve
  leases nothing from the queue (its housekeeping goes on); submissions are still taken.
  resume: clears the flag and pushes one wake-up token per ready job (up to 100), so that idle
  workers ask at once instead of at the end of their block time.

  Returns
  {'OK', paused_at}   paused_at: ms since the epoch, '' once resumed
]]

local paused_key, wake_key = KEYS[1], KEYS[2]
local prefix, action = ARGV[1], ARGV[2]

if action == 'pause' then
  local time = redis.call('TIME')
  local now = time[1] .. string.sub('00000' .. time[2], -6, -4)
  redis.call('SET', paused_key, now, 'NX')
  return {'OK', redis.call('GET', paused_key)}
end

if redis.call('DEL', paused_key) == 1 then
  local ready = 0
  for priority = 0, 9 do
    ready = ready + redis.call('LLEN', prefix .. 'ready:' .. priority)
  end
  for _ = 1, math.min(ready, 100) do
    redis.call('LPUSH', wake_key, '1')
  end
end
return {'OK', ''}
