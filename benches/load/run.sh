#!/usr/bin/env bash
# Load benchmark: tracegate with tracing on vs tracing off vs nginx, side by side, in one run.
#
# Starts, all on 127.0.0.1:
#   - an origin: nginx answering `return 200` (1 worker);
#   - nginx as a reverse proxy to it (WORKERS workers, upstream keep-alive);
#   - tracegate with tracing off (exporter none) and with tracing on (100 % sampled, OTLP/gRPC
#     to a live receiver that counts spans: examples/otlp_sink.rs), WORKERS threads each;
# then runs ROUNDS alternating rounds of wrk against each proxy and prints one table of medians:
# req/s, p50, p99, CPU µs per request (CPU time of the proxy's processes ÷ requests), spans
# received ÷ requests, each with its ratio to nginx and to tracing off.
# Everything it starts, it stops. Loopback only; runs for about ROUNDS × 3 × (DURATION + 3) s.
#
# Usage: benches/load/run.sh            (ROUNDS=3 DURATION=10 CONNS=50 WORKERS=1 by default)
#        PERF_DIR=/tmp/prof benches/load/run.sh   also records a cpu-clock profile (perf, with
#        call graphs) of each proxy during round 1, as PERF_DIR/<target>.perf.data
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
WORKERS=${WORKERS:-1}
WRK_THREADS=${WRK_THREADS:-1}
PERF_DIR=${PERF_DIR:-}

WORK=$(mktemp -d /tmp/tracegate-load.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[load] $*" >&2; }

# --- what it needs -----------------------------------------------------------------------------
scripts/deps.sh
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 && [ -x "$(command -v nginx)" ] || missing+=(nginx)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ -n "$PERF_DIR" ] && ! command -v perf >/dev/null 2>&1; then missing+=(linux-perf); fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  # Keep the package from starting its own nginx service on port 80.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  $SUDO rm -f /usr/sbin/policy-rc.d
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

log "building tracegate and the span sink (release)"
cargo build --release --locked --bin tracegate --example otlp_sink 2>&1 | tail -1 >&2
TG=target/release/tracegate
SINK=target/release/examples/otlp_sink

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # wait until something accepts on 127.0.0.1:$1
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  log "nothing listens on port $1"; return 1
}

# --- origin and nginx proxy --------------------------------------------------------------------
ORIGIN_PORT=$(free_port)
NGINX_PORT=$(free_port)
mkdir -p "$WORK/origin" "$WORK/proxy"
cat > "$WORK/origin/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/origin/nginx.pid;
error_log $WORK/origin/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$ORIGIN_PORT;
    location / { return 200 "ok\n"; }
  }
}
EOF
cat > "$WORK/proxy/nginx.conf" <<EOF
worker_processes $WORKERS;
daemon off;
pid $WORK/proxy/nginx.pid;
error_log $WORK/proxy/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream origin {
    server 127.0.0.1:$ORIGIN_PORT;
    keepalive 128;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
"$NGINX" -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -e "$WORK/origin/error.log" &
PIDS+=($!)
"$NGINX" -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" -e "$WORK/proxy/error.log" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")

# --- span sink and tracegate ---------------------------------------------------------------------
SINK_PORT=$(free_port)
COUNT_FILE="$WORK/spans.count"
"$SINK" "127.0.0.1:$SINK_PORT" "$COUNT_FILE" &
PIDS+=($!)

start_tracegate() { # name exporter-yaml -> prints "pid port"
  local name=$1 exporter=$2 port
  port=$(free_port)
  cat > "$WORK/$name.yaml" <<EOF
listen: ["127.0.0.1:$port"]
server: { threads: $WORKERS, grace_period: 0s }
telemetry:
  exporter: $exporter
routes:
  - name: all
    match: { path_prefix: / }
    upstream: origin
upstreams:
  origin: { backends: ["127.0.0.1:$ORIGIN_PORT"] }
EOF
  RUST_LOG=warn "$TG" --config "$WORK/$name.yaml" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  echo "$! $port"
}
read -r OFF_PID OFF_PORT < <(start_tracegate off "{ protocol: none }")
PIDS+=("$OFF_PID")
read -r ON_PID ON_PORT < <(start_tracegate on "{ protocol: grpc, endpoint: \"http://127.0.0.1:$SINK_PORT\" }")
PIDS+=("$ON_PID")

for p in "$ORIGIN_PORT" "$NGINX_PORT" "$SINK_PORT" "$OFF_PORT" "$ON_PORT"; do wait_port "$p"; done

# --- measuring -----------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)

cpu_ticks() { # total utime+stime of a process and its children processes (nginx workers)
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    if [ -r "/proc/$p/stat" ]; then
      total=$(( total + $(awk '{print $14 + $15}' "/proc/$p/stat") ))
    fi
  done
  echo "$total"
}

spans_now() { cat "$COUNT_FILE" 2>/dev/null || echo 0; }

spans_settled() { # wait until the sink's count stops moving (batch delay is 1 s)
  local a b
  a=$(spans_now)
  for _ in $(seq 1 40); do
    sleep 0.5
    b=$(spans_now)
    if [ "$a" = "$b" ]; then sleep 1; [ "$(spans_now)" = "$b" ] && break; fi
    a=$b
  done
  spans_now
}

to_us() { # wrk latency value (e.g. 1.23ms, 850.00us, 1.01s) -> microseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1000000; else print n }'
}

RESULTS="$WORK/results.tsv"
: > "$RESULTS"

run_one() { # round target port pid
  local round=$1 target=$2 port=$3 pid=$4 out t0 t1 s0 s1 reqs rps p50 p99
  s0=$(spans_settled)
  local perf_pid=""
  if [ -n "$PERF_DIR" ] && [ "$round" = 1 ]; then
    mkdir -p "$PERF_DIR"
    perf record -q -e cpu-clock -g -p "$(echo "$pid" $(pgrep -P "$pid" || true) | tr ' ' ',')" \
      -o "$PERF_DIR/$target.perf.data" -- sleep "$DURATION" 2>/dev/null &
    perf_pid=$!
  fi
  t0=$(cpu_ticks "$pid")
  out=$(wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/")
  t1=$(cpu_ticks "$pid")
  if [ -n "$perf_pid" ]; then wait "$perf_pid" || true; fi
  s1=$(spans_settled)
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(to_us "$(echo "$out" | awk '$1 == "50%" {print $2}')")
  p99=$(to_us "$(echo "$out" | awk '$1 == "99%" {print $2}')")
  if echo "$out" | grep -q "Non-2xx"; then log "$target: non-2xx responses!"; echo "$out" >&2; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$target" "$reqs" "$rps" "$p50" "$p99" \
    "$(( (t1 - t0) ))" "$(( s1 - s0 ))" >> "$RESULTS"
  log "round $round $target: $rps req/s"
}

log "warming up"
for port in "$NGINX_PORT" "$OFF_PORT" "$ON_PORT"; do
  wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$port/" >/dev/null
done

targets=("nginx $NGINX_PORT $NGINX_PID" "tracing-off $OFF_PORT $OFF_PID" "tracing-on $ON_PORT $ON_PID")
for round in $(seq 1 "$ROUNDS"); do
  # Rotate the order each round so no target always runs first or last.
  for i in 0 1 2; do
    read -r name port pid <<< "${targets[$(( (i + round - 1) % 3 ))]}"
    run_one "$round" "$name" "$port" "$pid"
  done
done

# Spans dropped or lost inside tracegate, from its own counters at shutdown.
kill -TERM "$ON_PID" 2>/dev/null || true
for _ in $(seq 1 100); do kill -0 "$ON_PID" 2>/dev/null || break; sleep 0.1; done
stopped=$(grep -o 'stopped: .*' "$WORK/on.err" || true)

python3 - "$RESULTS" "$CLK_TCK" "$ROUNDS" "$DURATION" "$CONNS" "$WORKERS" "$stopped" <<'EOF'
import statistics, sys, platform, os
path, clk, rounds, duration, conns, workers, stopped = sys.argv[1:8]
clk = int(clk)
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
by = {}
for r, target, reqs, rps, p50, p99, ticks, spans in rows:
    reqs = int(reqs)
    by.setdefault(target, []).append(dict(
        rps=float(rps), p50=float(p50), p99=float(p99),
        cpu=int(ticks) * 1e6 / clk / reqs, spans=int(spans) / reqs))
med = {t: {k: statistics.median(v[k] for v in vs) for k in vs[0]} for t, vs in by.items()}
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"\nmachine: {os.cpu_count()} cores, {cpu_model}, {platform.system()} {platform.release()}")
print(f"wrk -c{conns} -d{duration}s, {rounds} alternating rounds, medians; proxies with {workers} worker(s)/thread(s); origin nginx return 200\n")
hdr = f"{'target':<12} {'req/s':>9} {'p50 µs':>8} {'p99 µs':>8} {'CPU µs/req':>10} {'spans/req':>9} | {'req/s ÷nginx':>12} {'CPU ÷nginx':>10} {'req/s ÷off':>10} {'CPU ÷off':>8}"
print(hdr); print("-" * len(hdr))
for t in ["nginx", "tracing-off", "tracing-on"]:
    m = med.get(t)
    if not m: continue
    n, o = med["nginx"], med["tracing-off"]
    spans = f"{m['spans']:.3f}" if t == "tracing-on" else "-"
    print(f"{t:<12} {m['rps']:>9.0f} {m['p50']:>8.0f} {m['p99']:>8.0f} {m['cpu']:>10.1f} {spans:>9} | "
          f"{m['rps']/n['rps']:>12.2f} {m['cpu']/n['cpu']:>10.2f} {m['rps']/o['rps']:>10.2f} {m['cpu']/o['cpu']:>8.2f}")
print("\nspans/req: spans the OTLP receiver got ÷ requests (2.000 = a SERVER and a CLIENT span for every request)")
if stopped:
    print(f"tracing-on at exit: {stopped}")
EOF
if [ -n "$PERF_DIR" ]; then
  echo "note: round 1 ran under perf (profiles in $PERF_DIR); compare figures only from runs without PERF_DIR"
fi
