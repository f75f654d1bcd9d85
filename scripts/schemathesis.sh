#!/usr/bin/env bash
# Runs schemathesis against the real `geowebdns serve` (debug build, a fresh
# SQLite database with the bundled data, the admin API enabled with an admin
# token minted by the CLI), driven by the server's own /openapi.json.
# Fails on any 5xx and on any answer the document does not describe (status,
# content type, body schema). Used by .ci/run after `cargo test`.
#
# Settings (environment):
#   SCHEMATHESIS_MAX_EXAMPLES  examples per operation and phase (default 25)
#   SCHEMATHESIS_SEED          generation seed (default 20261126)
#   SCHEMATHESIS_VENV          where schemathesis is installed (default ~/.cache/geowebdns/schemathesis-VERSION)
#   SCHEMATHESIS_REPORT_DIR    JUnit report directory (default $CARGO_TARGET_DIR/schemathesis)
#   CARGO_TARGET_DIR           where cargo builds (default target/)
#
# Nothing reaches the internet: the harvester's timer is off
# (GEOWEBDNS_HARVEST_INTERVAL=0) and the server and schemathesis run in a
# network namespace of their own with only a loopback interface (`unshare -n`,
# as root). Where that is not possible, `POST /admin/v1/endpoints/{id}/harvest`
# (which fetches the endpoint's URL) is left out of the run instead.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$self")/.."

VERSION=4.32.5
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
VENV="${SCHEMATHESIS_VENV:-$HOME/.cache/geowebdns/schemathesis-$VERSION}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
SEED="${SCHEMATHESIS_SEED:-20261126}"
REPORT_DIR="${SCHEMATHESIS_REPORT_DIR:-$TARGET_DIR/schemathesis}"

if [ -z "${GEOWEBDNS_SCHEMATHESIS_INNER:-}" ]; then
  # 1. schemathesis, pinned, in a virtualenv of its own.
  if ! python3 -m venv --help >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv
  fi
  if [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/schemathesis" --version | grep -q "$VERSION"; then
    echo "installing schemathesis $VERSION into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
  fi
  # 2. The binary, in the profile `cargo test` builds (a no-op after it).
  cargo build --quiet --bin geowebdns
  # 3. The rest in a network namespace with only loopback, where possible.
  export GEOWEBDNS_SCHEMATHESIS_INNER=1
  if command -v unshare >/dev/null && command -v ip >/dev/null && unshare -n sh -c 'ip link set lo up' 2>/dev/null; then
    exec unshare -n bash -c 'ip link set lo up && exec bash "$0"' "$self"
  fi
  echo "note: no network namespace here; leaving out the harvest operation (it fetches the endpoint's URL)"
  export GEOWEBDNS_SCHEMATHESIS_NO_NETNS=1
fi

BIN="$TARGET_DIR/debug/geowebdns"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

export GEOWEBDNS_DATABASE_URL="sqlite://$work/registry.db"
export GEOWEBDNS_KEY_DIR="$work/keys"
export GEOWEBDNS_HARVEST_INTERVAL=0
export GEOWEBDNS_LOG="${GEOWEBDNS_LOG:-info}"

# 4. The server on a port of its choosing; the first start imports the bundled data.
"$BIN" serve --listen 127.0.0.1:0 2>"$work/server.log" >/dev/null &
server_pid=$!
addr=""
for _ in $(seq 1 600); do
  addr="$(grep -o 'address=[0-9.:]*' "$work/server.log" | head -n 1 | cut -d= -f2 || true)"
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "the server exited" >&2; exit 1; }
  sleep 0.5
done
[ -n "$addr" ] || { tail -n 50 "$work/server.log" >&2; echo "the server did not report its address" >&2; exit 1; }
echo "server at http://$addr"

# 5. An admin token from the CLI (same database and key directory).
token="$("$BIN" token issue --scope admin --ttl 2h --sub schemathesis)"

exclude=()
if [ -n "${GEOWEBDNS_SCHEMATHESIS_NO_NETNS:-}" ]; then
  exclude=(--exclude-operation-id harvest_endpoint)
fi

# 6. schemathesis: every operation, admin ones with the token.
mkdir -p "$REPORT_DIR"
start=$(date +%s)
status=0
"$VENV/bin/schemathesis" run "http://$addr/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --header "Authorization: Bearer $token" \
  --request-timeout 60 \
  --generation-database none \
  --report junit --report-dir "$REPORT_DIR" \
  --no-color \
  "${exclude[@]}" || status=$?
echo "schemathesis finished in $(( $(date +%s) - start )) s with status $status"
if grep -q 'panicked\|internal error' "$work/server.log"; then
  echo "the server log shows a panic or an internal error:" >&2
  grep 'panicked\|internal error' "$work/server.log" | head -n 20 >&2
  status=1
fi
exit "$status"
