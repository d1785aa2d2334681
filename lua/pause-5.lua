--[[
  pause — hold back (or release) the delivery of a queue's jobs.

  KEYS[1]  paused flag   <prefix>:{<queue>}:paused   (value: when the queue was paused, ms)
  KEYS[2]  wake list     <prefix>:{<queue>}:wake
  KEYS[3]  scheduled     <prefix>:{<queue>}:scheduled
  KEYS[4]  active        <prefix>:{<queue>}:active
  KEYS[5]  stats hash    <prefix>:{<queue>}:stats   (only whether it exists)

  ARGV[1]  queue key prefix <prefix>:{<queue>}:
  ARGV[2]  'pause' or 'resume'

  pause: sets the flag; a queue paused again keeps its first time. While it is set, reserve
  leases nothing from the queue (its housekeeping goes on); submissions are still taken.
  resume: clears the flag and pushes one wake-up token per job a reserve would find ready (up
  to 1,000): those in the ready lists and the scheduled ones due by now (a reserve promotes
  them). While paused, idle workers wait for a token, not for the next due time: with none
  ready but jobs scheduled for later or leased, one token lets a worker learn when to ask next.

  A queue without a stats hash has no job and never had one since it was made or deleted: it is
  not paused (a flag set there would hold back the first jobs of a queue made again later).

  Returns
  {'OK', paused_at}   paused_at: ms since the epoch, '' once resumed
  {'NOT_FOUND'}       pause of a queue without a stats hash; nothing changed
  an error reply, changing nothing, for another action
]]

-- @include args
-- @include wake

local paused_key, wake_key, scheduled_key, active_key, stats_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix, action = ARGV[1], ARGV[2]
check_choice(2, 'pause', 'resume')

if action == 'pause' then
  if redis.call('EXISTS', stats_key) == 0 then
    return {'NOT_FOUND'}
  end
  local time = redis.call('TIME')
  local now = time[1] .. string.sub('00000' .. time[2], -6, -4)
  redis.call('SET', paused_key, now, 'NX')
  return {'OK', redis.call('GET', paused_key)}
end

if redis.call('DEL', paused_key) == 1 then
  local time = redis.call('TIME')
  local now = time[1] .. string.sub('00000' .. time[2], -6, -4)
  local ready = redis.call('ZCOUNT', scheduled_key, '-inf', now)
  for priority = 0, 9 do
    ready = ready + redis.call('LLEN', prefix .. 'ready:' .. priority)
  end
  local pending = redis.call('ZCARD', scheduled_key) + redis.call('ZCARD', active_key)
  if ready == 0 and pending > 0 then ready = 1 end
  wake(wake_key, ready)
end
return {'OK', ''}
