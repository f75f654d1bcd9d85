#!/usr/bin/env bash
# Cold start of the full TIGER set from the store (issue 7: <= 10 s): how
# long the release binary takes from process start until it answers
# GET /v1/resolve, on an SQLite store that already holds every TIGER/Line
# 2019 place (29,798 polygons, 12.6 M vertices) plus the bundled data that
# `serve` imports into an empty store.
#
#   benches/coldstart.sh            # RUNS=3 starts, prints each and the median
#
# The store is imported once (a few minutes) into $COLDSTART_DIR (default
# /tmp/geowebdns-coldstart) and reused by later runs; delete the directory
# to import again. The TIGER file is $GEOWEBDNS_TIGER_PLACES or
# /work/shared/data/bench/tiger2019-places-us.geojson.gz; without it the
# script prints one line and exits 0. GEOWEBDNS_BIN runs a given binary
# instead of building one (see lib.sh).
#
# Phases printed per start (from the server's own log lines):
#   read     rows read from the store, while the rows already read are
#            parsed and prepared on every core (`index built` read_ms)
#   prepare  the preparation left after the last row was read
#            (`index built` prepare_ms)
#   index    Snapshot::build: sort, maps, R-tree and grid (`index built` index_ms)
#   build    prepare + index                   (`index built` build_ms)
#   total    process start -> first 200 from /v1/resolve (measured here)
# and the server's memory: its peak (VmHWM) and resident set (VmRSS) at the
# first answer (and how much of it is in transparent huge pages), and for
# the first start also the resident set after SETTLE seconds idle (default
# 20; 0 skips the wait), by when the allocator has handed the build's
# scratch memory back.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TIGER="${GEOWEBDNS_TIGER_PLACES:-/work/shared/data/bench/tiger2019-places-us.geojson.gz}"
RUNS="${RUNS:-3}"
SETTLE="${SETTLE:-20}"
WORK="${COLDSTART_DIR:-/tmp/geowebdns-coldstart}"

if [ ! -f "$TIGER" ]; then
  echo "skipping cold start: $TIGER not found (set GEOWEBDNS_TIGER_PLACES)"
  exit 0
fi
command -v curl >/dev/null || die "curl is needed"
build_release

mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
export GEOWEBDNS_DATABASE_URL="sqlite://$WORK/geowebdns.db"
export GEOWEBDNS_KEY_DIR="$WORK/keys"
export GEOWEBDNS_HARVEST_INTERVAL=0
export GEOWEBDNS_LOG="warn,geowebdns=info"
MARK="$WORK/imported"
if [ "$(cat "$MARK" 2>/dev/null || true)" != "$TIGER" ]; then
  echo "importing the bundled data and $TIGER into $WORK (once)" >&2
  rm -f "$WORK"/geowebdns.db* "$MARK"
  started=$(date +%s.%N)
  (cd "$WORK" && "$BIN" import --bundled >/dev/null)
  (cd "$WORK" && "$BIN" import "$TIGER" --id-field GEOID --id-prefix us-place: --name-field NAME \
    --tier place --source "U.S. Census Bureau TIGER/Line 2019 PLACE" --license "Public domain" >/dev/null)
  echo "$TIGER" >"$MARK"
  echo "imported in $(echo "$(date +%s.%N) - $started" | bc) s" >&2
fi
echo "store: $(du -h "$WORK/geowebdns.db" | cut -f1) at $WORK; machine: $(nproc) cores,$(uptime | sed 's/.*load average/ load average/')"

# status_mb PID FIELD: a /proc/PID/status field (kB) in MB.
status_mb() { awk -v f="$2:" '$1 == f { printf "%d", $2 / 1024 }' "/proc/$1/status"; }

# huge_mb PID: the server's anonymous memory in transparent huge pages, in MB.
huge_mb() { awk '$1 == "AnonHugePages:" { printf "%d", $2 / 1024 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo "?"; }

# log_field LOG MESSAGE FIELD: a numeric field of the first log line with MESSAGE.
log_field() { grep -m1 "$2" "$1" | grep -o "$3=[0-9]*" | head -n1 | cut -d= -f2; }

totals=()
for run in $(seq 1 "$RUNS"); do
  log="$WORK/server-$run.log"
  started=$(date +%s%N)
  (cd "$WORK" && exec "$BIN" serve --listen 127.0.0.1:0) 2>"$log" &
  pid=$!
  addr=""
  ready=""
  # Poll every 20 ms: first for the address, then for an answer.
  for _ in $(seq 1 6000); do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "the server exited"; }
    if [ -z "$addr" ]; then
      addr=$(grep -o 'address=[0-9.:]*' "$log" | head -n1 | cut -d= -f2 || true)
    fi
    if [ -n "$addr" ] && curl -fsS -o /dev/null "http://$addr/v1/resolve?lat=40.7128&lon=-74.0060" 2>/dev/null; then
      ready=$(date +%s%N)
      break
    fi
    sleep 0.02
  done
  [ -n "$ready" ] || { kill "$pid" 2>/dev/null; die "the server never answered (see $log)"; }
  memory="peak $(status_mb "$pid" VmHWM) MB, resident $(status_mb "$pid" VmRSS) MB ($(huge_mb "$pid") MB in huge pages)"
  if [ "$run" = 1 ] && [ "$SETTLE" != 0 ]; then
    sleep "$SETTLE"
    memory="$memory, $(status_mb "$pid" VmRSS) MB after ${SETTLE} s idle"
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  total=$(echo "scale=2; ($ready - $started) / 1000000000" | bc)
  totals+=("$total")
  printf 'start %d: %6.2f s  (jurisdictions %s, vertices %s; read %s ms, build %s ms = prepare %s ms + index %s ms; %s)\n' \
    "$run" "$total" "$(log_field "$log" 'index built' jurisdictions)" "$(log_field "$log" 'index built' vertices)" \
    "$(log_field "$log" 'index built' read_ms)" "$(log_field "$log" 'index built' build_ms)" \
    "$(log_field "$log" 'index built' prepare_ms)" "$(log_field "$log" 'index built' index_ms)" "$memory"
done
median=$(printf '%s\n' "${totals[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "cold start: median ${median} s of ${RUNS} (target <= 10 s)"
