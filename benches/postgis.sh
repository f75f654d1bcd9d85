#!/usr/bin/env bash
# Side by side with PostGIS (issue 7 point 3): the same boundaries, the same
# points, the same client concurrency, through geowebdns and through PostGIS.
#
#   benches/postgis.sh [POINTS=100000] [CLIENTS=1,2] [BATCH=1000]
#
# 1. Installs PostGIS from Debian's packages for the running PostgreSQL if
#    missing (postgresql-<major>-postgis-3).
# 2. Drops and recreates the database $PG_DB (default geowebdns_postgis) and
#    starts the release server on it, so geowebdns itself imports its bundled
#    boundaries there: both sides read the very same GeoJSON text.
# 3. Builds gis_boundaries (ST_GeomFromGeoJSON(boundary), GiST) and
#    gis_pieces (ST_Subdivide(geom, 256), GiST); ANALYZE.
# 4. Runs the client (benches/postgis.rs, a `cargo bench` target) pinned to
#    CLIENT_CPUS; the server and the PostgreSQL backends of the benchmark
#    connections are pinned to SERVER_CPUS.
#
# Environment: PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432), PG_DB
# (geowebdns_postgis), SERVER_CPUS (0), CLIENT_CPUS (1), SEED (42), FLOOR
# (20000 requests for the client floors), ROUNDS (5: the fast batch phases
# run the point set that many times), HTTP_ROUNDS (25: the same for
# geowebdns's batch phases, which are faster), GEOWEBDNS_BUSY_POLL_US (100:
# the server's `--busy-poll-us`; 0 lets its worker sleep between requests),
# GEOWEBDNS_BENCH_CLIENT_SPIN (1: the client busy-polls too, for both sides
# alike; see benches/postgis.rs).
# Results: target/bench-postgis/result.json and target/bench-postgis/table.txt.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
POINTS="${1:-100000}"
CLIENTS="${2:-1,2}"
BATCH="${3:-1000}"
SERVER_CPUS="${SERVER_CPUS:-0}"
CLIENT_CPUS="${CLIENT_CPUS:-1}"
# With one or two clients the server's worker would otherwise sleep after
# every answer and pay a wake-up for the next request (src/busy_poll.rs).
export GEOWEBDNS_BUSY_POLL_US="${GEOWEBDNS_BUSY_POLL_US:-100}"
SEED="${SEED:-42}"
FLOOR="${FLOOR:-20000}"
ROUNDS="${ROUNDS:-5}"
HTTP_ROUNDS="${HTTP_ROUNDS:-25}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}"
PG_DB="${PG_DB:-geowebdns_postgis}"
PG_URL="$PG_ADMIN_URL/$PG_DB"
OUT="$TARGET_DIR/bench-postgis"

case "$PG_DB" in
  test | postgres | template0 | template1 | root) die "refusing to drop the database $PG_DB" ;;
esac

psql_admin() { psql "$PG_ADMIN_URL/postgres" -v ON_ERROR_STOP=1 -qAtX "$@"; }
psql_db() { psql "$PG_URL" -v ON_ERROR_STOP=1 -qAtX "$@"; }

apt_install() {
  echo "installing $*" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

need_postgis() {
  local missing=()
  command -v curl >/dev/null || missing+=(curl)
  command -v taskset >/dev/null || missing+=(util-linux)
  command -v psql >/dev/null || missing+=(postgresql-client)
  [ "${#missing[@]}" -eq 0 ] || apt_install "${missing[@]}"
  psql_admin -c 'select 1' >/dev/null || die "PostgreSQL does not answer at $PG_ADMIN_URL"
  if [ -z "$(psql_admin -c "select 1 from pg_available_extensions where name = 'postgis'")" ]; then
    local major
    major=$(psql_admin -c 'show server_version_num')
    major=$((major / 10000))
    apt_install "postgresql-$major-postgis-3"
  fi
}

need_postgis
build_release
# The client: compiled by `cargo bench` only; find its executable.
CLIENT=$(cd "$ROOT" && cargo bench --bench postgis --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
exe=[m["executable"] for m in map(json.loads, sys.stdin) if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="postgis" and m.get("executable")]
print(exe[-1] if exe else "")')
[ -x "$CLIENT" ] || die "building the bench client failed (cargo bench --bench postgis --no-run)"

rm -rf "$OUT" && mkdir -p "$OUT"
trap stop_server EXIT

echo "database $PG_DB: dropped and recreated"
psql_admin -c "drop database if exists $PG_DB with (force)" -c "create database $PG_DB"
psql_db -c 'create extension postgis'
# One core serves geowebdns; one backend a connection serves PostgreSQL: no
# parallel workers. JIT is off (it only costs on these short queries).
psql_admin -c "alter database $PG_DB set max_parallel_workers_per_gather = 0" -c "alter database $PG_DB set jit = off"

echo "starting the server on $PG_DB (it imports the bundled boundaries there)"
t0=$(date +%s)
SERVER_DATABASE_URL="$PG_URL" start_server "$OUT/work" "$SERVER_CPUS" --max-batch "$((BATCH > 10000 ? BATCH : 10000))"
echo "server $BASE (pid $SERVER_PID) on cpu $SERVER_CPUS, ready after $(($(date +%s) - t0)) s"

echo "building the PostGIS tables"
t0=$(date +%s)
psql_db <<'SQL'
drop table if exists gis_boundaries, gis_pieces;
create table gis_boundaries as
  select id, ST_SetSRID(ST_GeomFromGeoJSON(boundary), 4326)::geometry(Geometry, 4326) as geom
  from jurisdictions;
alter table gis_boundaries add primary key (id);
create index gis_boundaries_geom on gis_boundaries using gist (geom);
create table gis_pieces as
  select id, ST_Subdivide(geom, 256)::geometry(Geometry, 4326) as geom from gis_boundaries;
create index gis_pieces_geom on gis_pieces using gist (geom);
analyze;
SQL
psql_db -F ' ' -c "select 'boundaries', count(*), sum(ST_NPoints(geom)), count(*) filter (where not ST_IsValid(geom)) from gis_boundaries" \
  -c "select 'pieces', count(*), sum(ST_NPoints(geom)), max(ST_NPoints(geom)) from gis_pieces" |
  awk '$1=="boundaries" {printf "gis_boundaries: %s rows, %s vertices, %s invalid\n", $2, $3, $4}
       $1=="pieces" {printf "gis_pieces: %s rows, %s vertices, at most %s a piece\n", $2, $3, $4}'
echo "tables built in $(($(date +%s) - t0)) s"

echo "client on cpu $CLIENT_CPUS: $POINTS points, clients $CLIENTS, batches of $BATCH; load average $(cut -d' ' -f1-3 /proc/loadavg)"
env GEOWEBDNS_POSTGIS_URL="$PG_URL" GEOWEBDNS_BENCH_BASE="$BASE" GEOWEBDNS_BENCH_POINTS="$POINTS" \
  GEOWEBDNS_BENCH_CLIENTS="$CLIENTS" GEOWEBDNS_BENCH_BATCH="$BATCH" GEOWEBDNS_BENCH_SEED="$SEED" \
  GEOWEBDNS_BENCH_FLOOR="$FLOOR" GEOWEBDNS_BENCH_ROUNDS="$ROUNDS" GEOWEBDNS_BENCH_HTTP_ROUNDS="$HTTP_ROUNDS" GEOWEBDNS_BENCH_PIN_BACKENDS="$SERVER_CPUS" \
  GEOWEBDNS_BENCH_OUT="$OUT/result.json" GEOWEBDNS_BENCH_SERVER_PID="$SERVER_PID" \
  taskset -c "$CLIENT_CPUS" "$CLIENT" | tee "$OUT/table.txt"
echo "server RSS after the run: $(($(rss_kb) / 1024)) MiB; load average $(cut -d' ' -f1-3 /proc/loadavg)"
