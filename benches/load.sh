#!/usr/bin/env bash
# Load benchmark (issue 7 point 2): the real release binary on one core, wrk on
# the other, and in ONE run, with the same keep-alive connections and
# concurrency: a trivial route (/healthz), /v1/resolve at random points, and
# the batch endpoint. Prints requests/s, p50/p99 and the ratios.
#
#   benches/load.sh [DURATION=15s] [CONNECTIONS=32] [BATCH=1000]
#
# Environment: SERVER_CPUS (default 0), CLIENT_CPUS (default 1), SEED (42).
# Installs wrk (Debian) if missing. Results: target/bench-load/result.json.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DURATION="${1:-15s}"
CONNS="${2:-32}"
BATCH="${3:-1000}"
SERVER_CPUS="${SERVER_CPUS:-0}"
CLIENT_CPUS="${CLIENT_CPUS:-1}"
OUT="$TARGET_DIR/bench-load"

need_tools
build_release
rm -rf "$OUT" && mkdir -p "$OUT"
trap stop_server EXIT
start_server "$OUT/work" "$SERVER_CPUS" --max-batch "$BATCH"
echo "server $BASE (pid $SERVER_PID) on cpu $SERVER_CPUS; wrk on cpu $CLIENT_CPUS; $CONNS connections, $DURATION per phase"

# Warm up caches and connections (not reported).
wrk_json resolve.lua 3s "$CONNS" >/dev/null

trivial=$(wrk_json trivial.lua "$DURATION" "$CONNS")
resolve=$(wrk_json resolve.lua "$DURATION" "$CONNS")
batch=$(wrk_json batch.lua "$DURATION" "$CONNS" BATCH="$BATCH")
rss=$(rss_kb)

python3 - "$trivial" "$resolve" "$batch" "$rss" "$OUT/result.json" <<'PY'
import json, sys
t, r, b = (json.loads(x) for x in sys.argv[1:4])
rss_kb, out = int(sys.argv[4]), sys.argv[5]
def line(name, x, extra=""):
    errs = sum(x[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_timeout", "non_2xx"))
    print(f"{name:<22} {x['rps']:>10.0f} req/s   p50 {x['p50_ms']:.3f} ms   p99 {x['p99_ms']:.3f} ms   errors {errs}{extra}")
line("GET /healthz", t)
line("GET /v1/resolve", r)
line(f"POST /v1/resolve x{b['points_per_request']}", b, f"   {b['points_per_second']:,.0f} points/s")
ratio = r["rps"] / t["rps"]
print(f"resolve / trivial requests/s: {ratio:.3f}  (target >= 0.85)")
print(f"batch points/s / single-point requests/s: {b['points_per_second'] / r['rps']:.1f}")
print(f"server RSS after the run: {rss_kb / 1024:.1f} MiB")
json.dump({"trivial": t, "resolve": r, "batch": b, "resolve_over_trivial": ratio, "rss_kb": rss_kb}, open(out, "w"), indent=1)
PY
