-- wrk script: POST a job with a fresh Idempotency-Key on every request.
-- Environment: WRK_QUEUES (spread over q0..qN-1, default 1 → queue "bench"), WRK_API_KEY,
-- WRK_PREFER (a Prefer header).
local queues = tonumber(os.getenv("WRK_QUEUES") or "1")
local api_key = os.getenv("WRK_API_KEY")
local prefer = os.getenv("WRK_PREFER")
local threads = 0

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function init(args)
  counter = 0
  prefix = string.format("%d-%d-%d", thread_id, os.time(), math.random(1, 1000000000))
  wrk.method = "POST"
  wrk.body = '{"type":"noop","payload":{"to":"ada@example.com","n":42}}'
  wrk.headers["Content-Type"] = "application/json"
  if api_key and api_key ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. api_key
  end
  if prefer and prefer ~= "" then
    wrk.headers["Prefer"] = prefer
  end
end

function request()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = prefix .. "-" .. counter
  local path = "/v1/queues/bench/jobs"
  if queues > 1 then
    path = "/v1/queues/q" .. (counter % queues) .. "/jobs"
  end
  return wrk.format(nil, path)
end
