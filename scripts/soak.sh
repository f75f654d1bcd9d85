#!/usr/bin/env bash
# Load and soak test (issue 8 point 5): drives GET /v1/resolve at random points
# with wrk at high concurrency for DURATION while an admin client writes every
# 100 ms (alternately patching an endpoint and replacing one of its services),
# and reports throughput, p50/p99/p999 latency, errors on both sides, and the
# server's RSS at start, every 10 s, and at the end.
#
#   scripts/soak.sh [DURATION=10m] [CONNECTIONS=64]
#
# Environment: SERVER_CPUS (default 0), CLIENT_CPUS (default 1; the admin
# writer runs there too), SEED. Installs wrk and curl (Debian) if missing.
# Exit status 1 when a target is missed: any error, p99 >= 10 ms, or RSS
# growing by more than 10% (and 8 MiB) between the first sample after
# warm-up and the end. Results: target/soak/.
set -euo pipefail
source "$(dirname "$0")/../benches/lib.sh"
DURATION="${1:-10m}"
CONNS="${2:-64}"
SERVER_CPUS="${SERVER_CPUS:-0}"
CLIENT_CPUS="${CLIENT_CPUS:-1}"
OUT="$TARGET_DIR/soak"

need_tools
build_release
rm -rf "$OUT" && mkdir -p "$OUT"
WRITER_PID=""; SAMPLER_PID=""
cleanup() {
  [ -n "$WRITER_PID" ] && kill "$WRITER_PID" 2>/dev/null || true
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
  stop_server
}
trap cleanup EXIT
start_server "$OUT/work" "$SERVER_CPUS"
echo "server $BASE (pid $SERVER_PID) on cpu $SERVER_CPUS; wrk and the admin writer on cpu $CLIENT_CPUS"
TOKEN=$(admin_token)

# The endpoint the writer edits, on Bloomington, Indiana (a bundled city).
JURISDICTION="us-place:1805860"
endpoint=$(curl -fsS -X POST "$BASE/admin/v1/jurisdictions/$JURISDICTION/endpoints" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"specification":"http://wiki.open311.org/GeoReport_v2","url":"https://soak.example.org/open311/v2/","type":"test","services":[{"service_code":"soak","service_name":"Soak 0"}]}')
EP=$(json_get "$endpoint" id)

# Warm-up (not reported), then the first RSS sample.
wrk_json resolve.lua 20s "$CONNS" >/dev/null
RSS_START=$(rss_kb)

# The admin writer: one write every 100 ms; each line: status seconds.
(
  i=0
  while true; do
    i=$((i + 1))
    if [ $((i % 2)) -eq 0 ]; then
      args=(-X PATCH "$BASE/admin/v1/endpoints/$EP" -d "{\"contact\":\"soak write $i\"}")
    else
      args=(-X PUT "$BASE/admin/v1/endpoints/$EP/services/soak" -d "{\"service_code\":\"soak\",\"service_name\":\"Soak $i\"}")
    fi
    taskset -c "$CLIENT_CPUS" curl -sS -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 10 \
      -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' "${args[@]}" || echo "000 10"
    sleep 0.1
  done
) >"$OUT/writes.txt" 2>>"$OUT/writer.err" &
WRITER_PID=$!

# RSS every 10 s.
( while true; do echo "$(date +%s) $(rss_kb)"; sleep 10; done ) >"$OUT/rss.txt" 2>/dev/null &
SAMPLER_PID=$!

result=$(wrk_json resolve.lua "$DURATION" "$CONNS")
kill "$WRITER_PID" "$SAMPLER_PID" 2>/dev/null || true
wait "$WRITER_PID" "$SAMPLER_PID" 2>/dev/null || true
WRITER_PID=""; SAMPLER_PID=""
RSS_END=$(rss_kb)
echo "$result" >"$OUT/resolve.json"

# The last write must be visible to a query at once.
last=$(curl -fsS "$BASE/admin/v1/endpoints/$EP" -H "authorization: Bearer $TOKEN")

python3 - "$result" "$RSS_START" "$RSS_END" "$OUT" "$DURATION" "$CONNS" "$last" <<'PY'
import json, statistics, sys
r = json.loads(sys.argv[1])
rss_start, rss_end, out, duration, conns = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
last = json.loads(sys.argv[7])
writes = [l.split() for l in open(f"{out}/writes.txt") if l.strip()]
ok = [float(t) for c, t in writes if c.startswith("2")]
bad = [c for c, t in writes if not c.startswith("2")]
samples = [int(l.split()[1]) for l in open(f"{out}/rss.txt") if len(l.split()) == 2 and l.split()[1].isdigit()]
errors = sum(r[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_timeout", "non_2xx"))
mib = lambda kb: kb / 1024
print(f"soak: {duration}, {conns} connections, GET /v1/resolve at random points")
print(f"  throughput      {r['rps']:.0f} requests/s ({r['requests']} requests)")
print(f"  latency         p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  p999 {r['p999_ms']:.3f} ms  max {r['max_ms']:.3f} ms")
print(f"  query errors    {errors} (connect {r['errors_connect']}, read {r['errors_read']}, write {r['errors_write']}, timeout {r['errors_timeout']}, non-2xx {r['non_2xx']})")
wp = lambda q: statistics.quantiles(ok, n=100)[q - 1] * 1000 if len(ok) >= 2 else float("nan")
print(f"  admin writes    {len(writes)} sent, {len(bad)} failed; latency p50 {wp(50):.1f} ms p99 {wp(99):.1f} ms")
print(f"  RSS             start {mib(rss_start):.1f} MiB, end {mib(rss_end):.1f} MiB, samples min {mib(min(samples or [0])):.1f} max {mib(max(samples or [0])):.1f} MiB ({len(samples)} samples)")
growth = rss_end - rss_start
fails = []
if errors or bad: fails.append(f"{errors} query errors and {len(bad)} failed writes")
if r["p99_ms"] >= 10: fails.append(f"p99 {r['p99_ms']:.2f} ms >= 10 ms")
if growth > max(rss_start * 0.10, 8 * 1024): fails.append(f"RSS grew by {mib(growth):.1f} MiB")
if not str(last.get("contact", "")).startswith("soak write") and not any(s.get("service_name", "").startswith("Soak") for s in last.get("services", [])):
    fails.append("the last write is not visible")
json.dump({"resolve": r, "writes": len(writes), "failed_writes": len(bad), "rss_start_kb": rss_start, "rss_end_kb": rss_end, "rss_samples_kb": samples, "failures": fails}, open(f"{out}/report.json", "w"), indent=1)
print("  targets         " + ("all met" if not fails else "MISSED: " + "; ".join(fails)))
sys.exit(1 if fails else 0)
PY
