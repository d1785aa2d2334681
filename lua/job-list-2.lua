--[[
  job-list — one page of the jobs waiting in a state, in the order they will leave it.

  KEYS[1]  scheduled zset   <prefix>:{<queue>}:scheduled
  KEYS[2]  active zset      <prefix>:{<queue>}:active
  (the ready lists <prefix>:{<queue>}:ready:<p> are named from ARGV[1], as in counts)

  ARGV[1]  queue key prefix <prefix>:{<queue>}:
  ARGV[2]  state: queued | scheduled | active
  ARGV[3]  offset (0 = the first to leave)
  ARGV[4]  page size

  Returns
  {'OK', total, {field, value, ...}, {field, value, ...}, ...}
    total: jobs in the state's lists or set; then one job record (HGETALL order) per job of
    the page: queued in delivery order (priority 9 first, oldest first within a priority),
    scheduled by due time, active by lease deadline. An entry whose record is gone is left
    out of the page (it still counts in total); nothing is written.
]]

local scheduled_key, active_key = KEYS[1], KEYS[2]
local prefix, state = ARGV[1], ARGV[2]
local offset, limit = tonumber(ARGV[3]), tonumber(ARGV[4])

local ids, total = {}, 0
if state == 'queued' then
  -- Workers pop from the right: the k-th to leave a list is at index -1-k.
  for priority = 9, 0, -1 do
    local list = prefix .. 'ready:' .. priority
    local length = redis.call('LLEN', list)
    local first = math.max(offset - total, 0)
    local wanted = limit - #ids
    if wanted > 0 and first < length then
      local page = redis.call('LRANGE', list, -(first + wanted), -(first + 1))
      for i = #page, 1, -1 do table.insert(ids, page[i]) end
    end
    total = total + length
  end
else
  local set = state == 'scheduled' and scheduled_key or active_key
  ids = redis.call('ZRANGE', set, offset, offset + limit - 1)
  total = redis.call('ZCARD', set)
end

local reply = {'OK', total}
for _, id in ipairs(ids) do
  local job = redis.call('HGETALL', prefix .. 'job:' .. id)
  if #job > 0 then table.insert(reply, job) end
end
return reply
