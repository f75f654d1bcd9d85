-- GET /v1/resolve at uniformly random points over the bundled data's
-- extent (the 48 contiguous states' box by default). Seeded, so every run
-- sends the same points.
package.path = os.getenv("LUA_DIR") .. "/?.lua;" .. package.path
require "report"
local seed = tonumber(os.getenv("SEED") or "42")
local min_lon, max_lon = -125.0, -66.9
local min_lat, max_lat = 24.5, 49.4
math.randomseed(seed)
local N = 65536
local paths = {}
for i = 1, N do
  local lat = min_lat + math.random() * (max_lat - min_lat)
  local lon = min_lon + math.random() * (max_lon - min_lon)
  paths[i] = string.format("/v1/resolve?lat=%.6f&lon=%.6f", lat, lon)
end
local i = 0
function request()
  i = i % N + 1
  return wrk.format("GET", paths[i])
end
function done(summary, latency, requests) report(summary, latency) end
