--[[
  cancel-waiting — withdraw a batch of the jobs waiting in one state: clear a queue.

  KEYS[1]  scheduled zset   <prefix>:{<queue>}:scheduled
  KEYS[2]  events stream    <prefix>:{<queue>}:events
  KEYS[3]  stats hash       <prefix>:{<queue>}:stats
  (the ready lists <prefix>:{<queue>}:ready:<p> are named from ARGV[1], as in counts)

  ARGV[1]  queue key prefix <prefix>:{<queue>}:
  ARGV[2]  state: queued | scheduled
  ARGV[3]  batch size: entries taken from the lists or the set in this call
  ARGV[4]  retention of the finished records, ms
  ARGV[5]  approximate maximum length of the events stream

  Takes up to ARGV[3] entries, queued ones in delivery order (priority 9 first, the next to
  leave first) or scheduled ones by due time, and cancels each whose record is still in that
  state, as cancel does one job. The caller repeats until fewer than a batch were taken.

  Returns
  {'CANCELED', canceled, taken}
  an error reply, changing nothing, for another state or a batch size below 1
]]

-- @include args
-- @include transition

local scheduled_key, events_key, stats_key = KEYS[1], KEYS[2], KEYS[3]
local prefix, state, batch = ARGV[1], ARGV[2], check_integer(3, 1)
local retention, events_max = check_integer(4, 1), ARGV[5]
-- Taken from the scheduled set in another state, a job would be left in no structure at all.
check_choice(2, 'queued', 'scheduled')
check_integer(5, 1)

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local ids = {}
if state == 'queued' then
  for priority = 9, 0, -1 do
    local list = prefix .. 'ready:' .. priority
    while #ids < batch do
      local id = redis.call('RPOP', list)
      if not id then break end
      table.insert(ids, id)
    end
  end
else
  ids = redis.call('ZRANGE', scheduled_key, 0, batch - 1)
  if #ids > 0 then redis.call('ZREM', scheduled_key, unpack(ids)) end
end

local canceled = 0
for _, id in ipairs(ids) do
  local key = prefix .. 'job:' .. id
  if redis.call('HGET', key, 'state') == state then
    redis.call('HSET', key, 'state', 'canceled', 'finished_at', now, 'updated_at', now)
    redis.call('PEXPIRE', key, retention)
    record_transition(key, events_key, events_max, id, {at = now, state = 'canceled'})
    canceled = canceled + 1
  end
end
if canceled > 0 then redis.call('HINCRBY', stats_key, 'canceled', canceled) end
return {'CANCELED', canceled, #ids}
