-- wrk script: POST batches of WRK_BATCH jobs (default 100), each item with a fresh
-- idempotency_key. Environment: WRK_BATCH, WRK_API_KEY, WRK_PREFER (a Prefer header).
local size = tonumber(os.getenv("WRK_BATCH") or "100")
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
  wrk.headers["Content-Type"] = "application/json"
  if api_key and api_key ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. api_key
  end
  if prefer and prefer ~= "" then
    wrk.headers["Prefer"] = prefer
  end
end

function request()
  local items = {}
  for i = 1, size do
    counter = counter + 1
    items[i] = '{"idempotency_key":"' .. prefix .. "-" .. counter ..
      '","type":"noop","payload":{"to":"ada@example.com","n":42}}'
  end
  return wrk.format(nil, "/v1/queues/bench/jobs:batch", nil, '{"jobs":[' .. table.concat(items, ",") .. "]}")
end
