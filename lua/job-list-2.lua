--[[
  job-list — one page of the jobs waiting in a state, in the order they will leave it.

  KEYS[1]  scheduled zset   <prefix>:{<queue>}:scheduled
  KEYS[2]  active zset      <prefix>:{<queue>}:active
  (the ready lists <prefix>:{<queue>}:ready:<p> are named from ARGV[1], as in counts)

  ARGV[1]  queue key prefix <prefix>:{<queue>}:
  ARGV[2]  state: queued | scheduled | active
  ARGV[3]  offset: entries to skip (from the first to leave, or from the cursor)
  ARGV[4]  page size
  ARGV[5]  cursor's score: the due time or lease deadline, ms; for queued, (priority + 1) * 10^14
           + the job's ready_seq, or, from cursors written before places in line, the priority
           alone ('' = no cursor: start at the first to leave)
  ARGV[6]  cursor's job id ('' = no cursor)

  Returns
  {'OK', total, start, next_score, next_id, {field, value, ...}, {field, value, ...}, ...}
    total: jobs in the state's lists or set; start: the position of the page's first entry
    (0 = the first to leave); next_score, next_id: the cursor of the next page, the last entry
    of this one ('', '' when nothing follows); then one job record (HGETALL order) per job of
    the page: queued in delivery order (priority 9 first, oldest first within a priority),
    scheduled by due time, active by lease deadline (ties by id). An entry whose record is
    gone is left out of the page (it still counts in total); nothing is written.
]]

-- @include args
-- @include cursor

local scheduled_key, active_key = KEYS[1], KEYS[2]
local prefix, state = ARGV[1], ARGV[2]
local offset, limit = check_integer(3, 0), check_integer(4, 1)
local after_score, after_id = ARGV[5], ARGV[6]
check_choice(2, 'queued', 'scheduled', 'active')
check_cursor(5)

local SEQ_BASE = 1e14

-- The place in line of the k-th job (0 = the next to leave) of a ready list: its ready_seq; 0
-- for one pushed before places in line were kept (it is older than every numbered one).
local function seq_at(list, k)
  local id = redis.call('LINDEX', list, -1 - k)
  return tonumber(id and redis.call('HGET', prefix .. 'job:' .. id, 'ready_seq') or 0) or 0
end

-- How many jobs of a ready list have a place in line up to seq (they stand in front of every
-- later one: places never fall from a list's front to its back), by bisection.
local function count_up_to(list, length, seq)
  local low, high = 0, length
  while low < high do
    local middle = math.floor((low + high) / 2)
    if seq_at(list, middle) <= seq then low = middle + 1 else high = middle end
  end
  return low
end

-- Where the queued job after the cursor stands in delivery order: after every job of a higher
-- priority, and after those of its own list up to the cursor's job. When that job has left its
-- place since (a worker took it and it came back, it was cancelled), after those of its list
-- that stood in front of it: those whose place in line is not after the one in the cursor.
local function queued_after(id, cursor)
  local priority, seq = cursor, nil
  if cursor >= SEQ_BASE then
    priority, seq = math.floor(cursor / SEQ_BASE) - 1, cursor % SEQ_BASE
  end
  priority = math.max(0, math.min(9, priority))
  local ahead = 0
  for p = 9, priority + 1, -1 do ahead = ahead + redis.call('LLEN', prefix .. 'ready:' .. p) end
  local list = prefix .. 'ready:' .. priority
  local length = redis.call('LLEN', list)
  local current = tonumber(redis.call('HGET', prefix .. 'job:' .. id, 'ready_seq'))
  if seq == nil or seq == current then
    -- Workers pop from the right: look from there, where an early page's cursor is.
    local index = redis.call('LPOS', list, id, 'RANK', -1)
    if index then return ahead + length - index end
    -- A cursor from before places in line, whose job has left: it left first (lists are first
    -- in, first out), so its whole list still follows it.
    if seq == nil then return ahead end
  end
  return ahead + count_up_to(list, length, seq)
end

-- The cursor of a queued job: its priority and place in line in one number.
local function queued_cursor(id, priority)
  local seq = tonumber(redis.call('HGET', prefix .. 'job:' .. id, 'ready_seq')) or 0
  return string.format('%d', (tonumber(priority) + 1) * SEQ_BASE + seq)
end

local ids, scores, total = {}, {}, 0
local start = offset
if state == 'queued' then
  if after_id ~= '' then start = start + queued_after(after_id, tonumber(after_score)) end
  -- The k-th to leave a list is at index -1-k.
  for priority = 9, 0, -1 do
    local list = prefix .. 'ready:' .. priority
    local length = redis.call('LLEN', list)
    local first = math.max(start - total, 0)
    local wanted = limit - #ids
    if wanted > 0 and first < length then
      local page = redis.call('LRANGE', list, -(first + wanted), -(first + 1))
      for i = #page, 1, -1 do
        local n = #ids + 1
        ids[n], scores[n] = page[i], tostring(priority)
      end
    end
    total = total + length
  end
else
  local set = state == 'scheduled' and scheduled_key or active_key
  if after_id ~= '' then start = start + position_after(set, after_score, after_id, false) end
  local page = redis.call('ZRANGE', set, start, start + limit - 1, 'WITHSCORES')
  for i = 1, #page, 2 do
    local n = #ids + 1
    ids[n], scores[n] = page[i], page[i + 1]
  end
  total = redis.call('ZCARD', set)
end

local reply = {'OK', total, start, '', ''}
if #ids > 0 and start + #ids < total then
  local last = ids[#ids]
  reply[4], reply[5] = state == 'queued' and queued_cursor(last, scores[#ids]) or scores[#ids], last
end
for _, id in ipairs(ids) do
  local job = redis.call('HGETALL', prefix .. 'job:' .. id)
  if #job > 0 then table.insert(reply, job) end
end
return reply
