-- wrk script: POST /api/2.0/mlflow/runs/log-metric for one run, a new step
-- per request, with AUTH (an Authorization header value) on every request
-- when it is set. ../shared/bench/mlflow/wrk/log_metric.lua, plus the header.
-- Usage: RUN_ID=<run id> AUTH="Bearer ..." wrk -t2 -c64 -d10s -s log_metric_auth.lua URL
local run_id = os.getenv("RUN_ID")
local auth = os.getenv("AUTH")
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tid or 0
end

request = function()
  counter = counter + 1
  local step = thread_id * 100000000 + counter
  local body = string.format(
    '{"run_id":"%s","key":"loss","value":%d.5,"timestamp":%d,"step":%d}',
    run_id, counter % 1000, 1764633600000 + step, step)
  local headers = {["Content-Type"] = "application/json"}
  if auth and auth ~= "" then
    headers["Authorization"] = auth
  end
  return wrk.format("POST", "/api/2.0/mlflow/runs/log-metric", headers, body)
end
