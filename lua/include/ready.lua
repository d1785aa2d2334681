--[[
  include ready — push_ready(prefix, id, priority, front): put a queued job into its ready list
  and give it its place in line, the job field ready_seq. At the back (LPUSH), the queue's next
  push number: the stats hash's ready_seq, one more for each push (enqueue writes the same two
  fields itself, with the job's other ones). At the front (RPUSH: it leaves next), '0'. From a
  list's front to its back the numbers never fall, so job-list finds where a cursor's job stood
  after it has left its list or gone back to it.
]]
local function push_ready(prefix, id, priority, front)
  local list, job_key = prefix .. 'ready:' .. priority, prefix .. 'job:' .. id
  if front then
    redis.call('RPUSH', list, id)
    redis.call('HSET', job_key, 'ready_seq', '0')
  else
    redis.call('LPUSH', list, id)
    local seq = redis.call('HINCRBY', prefix .. 'stats', 'ready_seq', '1')
    redis.call('HSET', job_key, 'ready_seq', string.format('%d', seq))
  end
end
