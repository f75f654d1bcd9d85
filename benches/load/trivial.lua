-- GET /healthz: the framework floor (routing, middleware, a tiny JSON body).
package.path = os.getenv("LUA_DIR") .. "/?.lua;" .. package.path
require "report"
wrk.method = "GET"
wrk.path = "/healthz"
function done(summary, latency, requests) report(summary, latency) end
