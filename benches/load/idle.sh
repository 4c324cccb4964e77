#!/usr/bin/env bash
# Memory of idle keep-alive connections: RSS of tracegate at rest, with CONNS idle keep-alive
# connections open (each has made one request), and again after the clients closed them.
# With BASE=/path/to/other/tracegate the same rounds run against that binary too, side by
# side, for a before/after ratio.
#
#   benches/load/idle.sh                 # CONNS=10000, this checkout's release build
#   CONNS=3000 BASE=/tmp/old/tracegate benches/load/idle.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CONNS=${CONNS:-10000}
WORKERS=${WORKERS:-2}
LOAD_TAG=idle
source benches/load/lib.sh
load_init idle
load_tools python3:python3 nginx:nginx

if [ -z "${TG:-}" ]; then
  cargo build --release --locked --bin tracegate >&2
  TG=target/release/tracegate
fi
ulimit -n "$(ulimit -Hn)"
start_origin

# One round against binary $2 (label $1): prints "label rest_kib open_kib closed_kib".
round() {
  local label=$1 bin=$2 port cfg pid
  port=$(free_port)
  cfg="$WORK/$label.yaml"
  cat >"$cfg" <<EOF
listen: ["127.0.0.1:$port"]
server: { threads: $WORKERS, grace_period: 0s, shutdown_timeout: 1s, watch_config: false }
telemetry: { exporter: { protocol: none } }
routes: [{ name: all, upstream: origin }]
upstreams: { origin: { backends: ["127.0.0.1:$ORIGIN_PORT"] } }
EOF
  # The config keys of this build that an older binary may not know are left out above.
  "$bin" --config "$cfg" >"$WORK/$label.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_port "$port"
  python3 - "$port" "$CONNS" "$pid" "$label" <<'PY'
import asyncio, resource, sys, time
port, conns, pid, label = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])
async def one():
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    await w.drain()
    await r.readuntil(b"\r\n\r\n")
    return r, w
async def main():
    # warm up: a few requests on a fresh connection, so the rest figure includes the pools
    for _ in range(3):
        r, w = await one(); w.close()
    await asyncio.sleep(1)
    rest = rss()
    held = []
    sem = asyncio.Semaphore(200)
    async def opened():
        async with sem:
            held.append(await one())
    await asyncio.gather(*(opened() for _ in range(conns)))
    await asyncio.sleep(2)
    full = rss()
    for r, w in held:
        w.close()
    held.clear()
    # jemalloc gives freed pages back after dirty_decay_ms (10 s)
    await asyncio.sleep(15)
    closed = rss()
    print(label, rest, full, closed, conns)
asyncio.run(main())
PY
  stop_process "$pid" 5
}

{
  round this "$TG"
  if [ -n "${BASE:-}" ]; then round base "$BASE"; fi
} >"$WORK/rows"

python3 - "$WORK/rows" "$CONNS" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
conns = int(sys.argv[2])
print(f"| build | RSS at rest | with {conns} idle keep-alive connections | per connection | after they closed |")
print("|---|---|---|---|---|")
for label, rest, full, closed, _ in rows:
    rest, full, closed = int(rest), int(full), int(closed)
    print(f"| {label} | {rest/1024:.1f} MiB | {full/1024:.1f} MiB | {(full-rest)/conns:.1f} KiB | {closed/1024:.1f} MiB |")
PY
