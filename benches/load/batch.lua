-- POST /v1/resolve with BATCH random points per request (default 1000).
package.path = os.getenv("LUA_DIR") .. "/?.lua;" .. package.path
require "report"
local batch = tonumber(os.getenv("BATCH") or "1000")
local seed = tonumber(os.getenv("SEED") or "42")
-- RECORDS=false asks for ids only (no `jurisdictions` records in the answer).
local records = os.getenv("RECORDS") == "false" and '"records":false,' or ""
math.randomseed(seed + 1)
local bodies = {}
for b = 1, 16 do
  local pts = {}
  for k = 1, batch do
    pts[k] = string.format('{"lat":%.6f,"lon":%.6f}', 24.5 + math.random() * 24.9, -125.0 + math.random() * 58.1)
  end
  bodies[b] = '{' .. records .. '"points":[' .. table.concat(pts, ",") .. ']}'
end
local i = 0
function request()
  i = i % #bodies + 1
  return wrk.format("POST", "/v1/resolve", {["Content-Type"] = "application/json"}, bodies[i])
end
function done(summary, latency, requests)
  report(summary, latency, string.format(',"points_per_request":%d,"points_per_second":%.1f', batch, summary.requests * batch / (summary.duration / 1e6)))
end
