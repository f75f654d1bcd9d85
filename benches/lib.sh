# Shared helpers of benches/load.sh and scripts/soak.sh (sourced, not run).
# They build the release binary once, start it on a private SQLite copy of the
# bundled data, and drive it with wrk (Debian's package) from Lua scripts.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# GEOWEBDNS_BIN runs a given binary instead of building one (to compare two
# builds back to back in one session: copy the old binary aside first).
BIN="${GEOWEBDNS_BIN:-$TARGET_DIR/release/geowebdns}"
# Absolute, since the server runs in its work directory.
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac
LUA_DIR="$ROOT/benches/load"

die() { echo "error: $*" >&2; exit 1; }

# wrk from Debian's packages (no compiler needed); curl for the admin writer.
need_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v curl >/dev/null || missing+=(curl)
  command -v taskset >/dev/null || missing+=(util-linux)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

build_release() {
  if [ -n "${GEOWEBDNS_BIN:-}" ]; then
    [ -x "$BIN" ] || die "GEOWEBDNS_BIN=$BIN is not an executable"
    return 0
  fi
  (cd "$ROOT" && cargo build --release --quiet --bin geowebdns) || die "release build failed"
}

# start_server WORKDIR CPUSET [extra serve flags...]: starts `geowebdns serve`
# pinned to CPUSET on a free port; sets SERVER_PID and BASE.
# SERVER_DATABASE_URL picks another store (default: SQLite in WORKDIR). The
# server runs in WORKDIR, so nothing it writes lands in the checkout.
start_server() {
  local work="$1" cpus="$2"; shift 2
  mkdir -p "$work"
  export GEOWEBDNS_DATABASE_URL="${SERVER_DATABASE_URL:-sqlite://$work/geowebdns.db}"
  export GEOWEBDNS_KEY_DIR="$work/keys"
  export GEOWEBDNS_HARVEST_INTERVAL=0   # benchmarks never reach the internet
  export GEOWEBDNS_LOG="${GEOWEBDNS_LOG:-warn,geowebdns=info}"
  # SERVER_WRAPPER: a command the server runs under (benches/instructions.sh: valgrind).
  # shellcheck disable=SC2086
  (cd "$work" && exec taskset -c "$cpus" ${SERVER_WRAPPER:-} "$BIN" serve --listen 127.0.0.1:0 "$@") 2>"$work/server.log" &
  SERVER_PID=$!
  [ "${GEOWEBDNS_BUSY_POLL_US:-0}" = 0 ] || echo "server: busy polling ${GEOWEBDNS_BUSY_POLL_US} us before a worker sleeps (GEOWEBDNS_BUSY_POLL_US)"
  local addr=""
  for _ in $(seq 1 1200); do
    addr=$(grep -o 'address=[0-9.:]*' "$work/server.log" | head -n1 | cut -d= -f2 || true)
    [ -n "$addr" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$work/server.log" >&2; die "the server exited"; }
    sleep 0.5
  done
  [ -n "$addr" ] || die "the server did not report its address"
  BASE="http://$addr"
  for _ in $(seq 1 240); do
    curl -fsS "$BASE/readyz" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  die "the server never became ready"
}

stop_server() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}

# Resident set size of the server, in KiB.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }

# CPU time the server has used so far (user + system), in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }

# An admin token (1 hour) minted with the CLI against the same store and keys.
admin_token() {
  "$BIN" token issue --scope admin --ttl 1h --sub "bench-$$"
}

# wrk_json LUA DURATION CONNECTIONS [env...]: runs wrk pinned to the other
# core with a Lua script whose done() prints one JSON line; prints that line.
wrk_json() {
  local lua="$1" duration="$2" conns="$3"; shift 3
  env LUA_DIR="$LUA_DIR" "$@" taskset -c "$CLIENT_CPUS" wrk -t1 -c"$conns" -d"$duration" --timeout 10s -s "$LUA_DIR/$lua" "$BASE" \
    | grep '^{' | tail -n1
}

# json_get JSON KEY: one numeric member of a flat JSON object.
json_get() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
