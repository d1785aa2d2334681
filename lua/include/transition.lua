--[[
  include transition — HISTORY_MAX and record_transition(job_key, events_key, events_max, id, entry):
  append entry ({at = ms, state = ..., ...}) to the job's history (fields hn and h:<n>) and add
  {job, state, at} to the queue's event stream, capped near events_max.
  A job keeps its latest HISTORY_MAX history entries; each new one past them drops the oldest.
  Scripts that write the entry together with other fields (ack, reserve's lease) apply the same
  cap themselves.
]]
local HISTORY_MAX = 1000

local function record_transition(job_key, events_key, events_max, id, entry)
  local n = redis.call('HINCRBY', job_key, 'hn', 1)
  if n > HISTORY_MAX then redis.call('HDEL', job_key, 'h:' .. (n - HISTORY_MAX)) end
  redis.call('HSET', job_key, 'h:' .. n, cjson.encode(entry))
  redis.call('XADD', events_key, 'MAXLEN', '~', events_max, '*', 'job', id, 'state', entry.state, 'at', entry.at)
end
