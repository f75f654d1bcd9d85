#!/usr/bin/env bash
# Load benchmark (issue 7 point 2): the real release binary on one core, wrk on
# the other, and in ONE run, with the same keep-alive connections and
# concurrency: a trivial route (/healthz), /v1/resolve at random points, and
# the batch endpoint. Prints requests/s, p50/p99 and the ratios.
#
#   benches/load.sh [DURATION=15s] [CONNECTIONS=32] [BATCH=1000]
#
# Environment: SERVER_CPUS (default 0), CLIENT_CPUS (default 1), SEED (42),
# GEOWEBDNS_BIN (a binary to run instead of building the release one; see
# lib.sh), OUT (results directory, default target/bench-load).
# Installs wrk (Debian) if missing. Results: target/bench-load/result.json.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DURATION="${1:-15s}"
CONNS="${2:-32}"
BATCH="${3:-1000}"
SERVER_CPUS="${SERVER_CPUS:-0}"
CLIENT_CPUS="${CLIENT_CPUS:-1}"
OUT="${OUT:-$TARGET_DIR/bench-load}"

need_tools
build_release
rm -rf "$OUT" && mkdir -p "$OUT"
trap stop_server EXIT
start_server "$OUT/work" "$SERVER_CPUS" --max-batch "$BATCH"
echo "server $BASE (pid $SERVER_PID) on cpu $SERVER_CPUS; wrk on cpu $CLIENT_CPUS; $CONNS connections, $DURATION per phase"

# Warm up caches and connections (not reported).
wrk_json resolve.lua 3s "$CONNS" >/dev/null

# Each phase also records the server's CPU time (user + system, from
# /proc): CPU per request stays meaningful when other work shares the
# machine and requests/s does not.
c0=$(cpu_ticks)
trivial=$(wrk_json trivial.lua "$DURATION" "$CONNS")
c1=$(cpu_ticks)
resolve=$(wrk_json resolve.lua "$DURATION" "$CONNS")
c2=$(cpu_ticks)
batch=$(wrk_json batch.lua "$DURATION" "$CONNS" BATCH="$BATCH")
c3=$(cpu_ticks)
rss=$(rss_kb)

python3 - "$trivial" "$resolve" "$batch" "$rss" "$OUT/result.json" "$c0 $c1 $c2 $c3 $(getconf CLK_TCK)" <<'PY'
import json, sys
t, r, b = (json.loads(x) for x in sys.argv[1:4])
rss_kb, out = int(sys.argv[4]), sys.argv[5]
c0, c1, c2, c3, hz = (float(x) for x in sys.argv[6].split())
for x, ticks in ((t, c1 - c0), (r, c2 - c1), (b, c3 - c2)):
    x["server_cpu_s"] = ticks / hz
    x["server_cpu_us_per_request"] = ticks / hz * 1e6 / max(x["requests"], 1)
def line(name, x, extra=""):
    errs = sum(x[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_timeout", "non_2xx"))
    cpu = f"   cpu {x['server_cpu_us_per_request']:.1f} us/req ({x['server_cpu_s'] / x['seconds']:.2f} cores)"
    print(f"{name:<22} {x['rps']:>10.0f} req/s   p50 {x['p50_ms']:.3f} ms   p99 {x['p99_ms']:.3f} ms   errors {errs}{cpu}{extra}")
line("GET /healthz", t)
line("GET /v1/resolve", r)
line(f"POST /v1/resolve x{b['points_per_request']}", b, f"   {b['points_per_second']:,.0f} points/s")
ratio = r["rps"] / t["rps"]
print(f"resolve / trivial requests/s: {ratio:.3f}  (target >= 0.85)")
print(f"batch points/s / single-point requests/s: {b['points_per_second'] / r['rps']:.1f}")
tc, rc = t["server_cpu_us_per_request"], r["server_cpu_us_per_request"]
print(f"server CPU per request: trivial {tc:.1f} us, resolve {rc:.1f} us (ratio {tc / rc:.3f}), batch {b['server_cpu_us_per_request'] / b['points_per_request']:.2f} us/point")
print(f"server RSS after the run: {rss_kb / 1024:.1f} MiB")
json.dump({"trivial": t, "resolve": r, "batch": b, "resolve_over_trivial": ratio, "rss_kb": rss_kb}, open(out, "w"), indent=1)
PY
