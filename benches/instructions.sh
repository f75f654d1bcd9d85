#!/usr/bin/env bash
# Instructions a request: the real release binary under valgrind's callgrind
# on the bundled data, one keep-alive connection, REQUESTS requests to the
# trivial route (/healthz) and as many to /v1/resolve at the load
# benchmark's random points (same box, seeded). Prints the server's
# user-space instructions a request for each route, the difference, their
# ratio, and the functions whose share differs most.
#
#   benches/instructions.sh [REQUESTS=2000]
#
# Why: on a shared 2-core machine the ratio benches/load.sh reports moves by
# 10 % and more between rounds of one run, far more than most changes to the
# request path. Instruction counts repeat to about 0.1 % between runs, so
# they show what a change did to the work a request takes (not to its cache
# misses or the kernel's share: load.sh stays the figure of record).
#
# Environment: GEOWEBDNS_BIN (a binary instead of building one), SEED (42),
# OUT (results directory, default target/bench-instructions). Installs
# valgrind (Debian) if missing. Takes about a minute.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
REQUESTS="${1:-2000}"
OUT="${OUT:-$TARGET_DIR/bench-instructions}"
SEED="${SEED:-42}"

need_tools
if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
  echo "installing valgrind" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
fi
build_release
rm -rf "$OUT" && mkdir -p "$OUT"
trap stop_server EXIT
SERVER_WRAPPER="valgrind --tool=callgrind --callgrind-out-file=$OUT/callgrind.out" \
  start_server "$OUT/work" 0
echo "server $BASE (pid $SERVER_PID) under callgrind; $REQUESTS requests a route"

# One keep-alive connection; the client's own cost is not counted.
client() {
  python3 - "$BASE" "$1" "$2" "$SEED" <<'PY'
import http.client, random, sys, urllib.parse
base, route, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
url = urllib.parse.urlsplit(base)
random.seed(seed)
c = http.client.HTTPConnection(url.hostname, url.port)
size = 0
for _ in range(n):
    if route == "resolve":
        lat = 24.5 + random.random() * (49.4 - 24.5)
        lon = -125.0 + random.random() * (-66.9 + 125.0)
        path = "/v1/resolve?lat=%.6f&lon=%.6f" % (lat, lon)
    else:
        path = "/healthz"
    c.request("GET", path)
    r = c.getresponse()
    size += len(r.read())
    if r.status != 200:
        sys.exit(f"{path}: status {r.status}")
print(f"{route}: {n} requests, {size / n:.0f} bytes an answer on average")
PY
}

# Warm up (first-touch allocations, lazy statics), then one dump a route.
client resolve 200 >/dev/null
client trivial 200 >/dev/null
for route in trivial resolve; do
  callgrind_control -z "$SERVER_PID" >/dev/null
  client "$route" "$REQUESTS"
  callgrind_control -d "$route" "$SERVER_PID" >/dev/null
done
stop_server

python3 - "$OUT" "$REQUESTS" <<'PY'
import glob, os, re, subprocess, sys
out, n = sys.argv[1], int(sys.argv[2])
def dump(trigger):
    for f in sorted(glob.glob(os.path.join(out, "callgrind.out*"))):
        with open(f, errors="replace") as fh:
            head = fh.read(4096)
        if re.search(rf"^desc: Trigger: .*{trigger}", head, re.M):
            return f
    sys.exit(f"no dump for {trigger}")
def functions(f):
    text = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=no", "--auto=no", f],
                          capture_output=True, text=True, check=True).stdout
    total, per = None, {}
    for line in text.splitlines():
        m = re.match(r"\s*([0-9,]+) \(\s*[0-9.]+%\)\s+(.*)", line)
        if not m:
            continue
        v = int(m.group(1).replace(",", "")) / n
        if "PROGRAM TOTALS" in m.group(2):
            total = v
            continue
        name = re.sub(r"^.*/(registry/src/[^/]+|rustc/[0-9a-f]+)/", "", m.group(2))
        name = re.sub(r" \[[^]]*\]$", "", name)
        per[name] = per.get(name, 0) + v
    return total, per
t_total, t = functions(dump("trivial"))
r_total, r = functions(dump("resolve"))
print(f"GET /healthz      {t_total:9.0f} instructions a request")
print(f"GET /v1/resolve   {r_total:9.0f} instructions a request")
print(f"difference        {r_total - t_total:9.0f}")
print(f"ratio (trivial / resolve): {t_total / r_total:.3f}")
print("largest differences (resolve minus trivial, instructions a request):")
# Threads' entry points (inlined, they carry everything as their own cost
# in this view: more than half the total) are left out.
rows = [k for k in set(t) | set(r) if max(t.get(k, 0), r.get(k, 0)) < 0.5 * t_total]
for k in sorted(rows, key=lambda k: -abs(r.get(k, 0) - t.get(k, 0)))[:20]:
    print(f"  {r.get(k, 0) - t.get(k, 0):8.0f}  {k[:150]}")
PY
