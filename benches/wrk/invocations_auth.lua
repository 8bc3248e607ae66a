-- wrk script: POST the single-row MLflow /invocations body (BODY_FILE)
-- with AUTH (an Authorization header value) on every request when set.
-- ../shared/bench/mlflow/invocations.lua, plus the header.
-- Usage: BODY_FILE=row.json AUTH="Bearer ..." wrk -t2 -c64 -d10s -s invocations_auth.lua URL
local f = assert(io.open(os.getenv("BODY_FILE"), "r"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
