#!/usr/bin/env bash
# Instructions per request: tracegate (tracing off, and on with OTLP/gRPC to a live span sink)
# under valgrind's callgrind, which counts instructions rather than time, so the figure does
# not move with whatever else the machine is doing. Use it to compare two builds where the
# wall-clock benchmark (run.sh) is too noisy to tell a few per cent apart.
#
# For each target: start it under callgrind, warm up with WARMUP requests, zero the counters,
# send REQUESTS sequential keep-alive GETs through it to an nginx origin, dump the counters, and
# divide. All threads count (the exporter thread too, for tracing on).
#
# Usage: benches/load/instructions.sh                 (REQUESTS=3000 WARMUP=300)
#        BASE=/path/to/tracegate benches/load/instructions.sh   the same for an earlier build,
#        and the ratio of this build to it
#        KEEP_DIR=/tmp/cg benches/load/instructions.sh   keeps each target's dump there, for
#        callgrind_annotate (e.g. to count allocations per request)
set -euo pipefail
cd "$(dirname "$0")/../.."

REQUESTS=${REQUESTS:-3000}
WARMUP=${WARMUP:-300}
BASE=${BASE:-}
KEEP_DIR=${KEEP_DIR:-}
WORKERS=1

LOAD_TAG=instructions
source benches/load/lib.sh
load_init instructions
load_tools nginx:nginx python3:python3 valgrind:valgrind

log "building tracegate and the span sink (release)"
cargo build --release --locked --bin tracegate --example otlp_sink 2>&1 | tail -1 >&2

start_origin
start_sink
for p in "$ORIGIN_PORT" "$SINK_PORT"; do wait_port "$p"; done

# Sends N sequential GETs on one keep-alive connection; fails on anything but 200.
send() { # port n
  python3 - "$1" "$2" <<'EOF'
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(n):
    c.request("GET", "/")
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"status {r.status}")
EOF
}

measure() { # name binary exporter-yaml -> prints instructions per request
  local name=$1 bin=$2 exporter=$3 pid port out total
  out="$WORK/$name.callgrind"
  printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s "%s" "$@"\n' \
    "$out" "$bin" > "$WORK/$name.sh"
  chmod +x "$WORK/$name.sh"
  read -r pid port < <(TG="$WORK/$name.sh" start_tracegate "$name" "$exporter")
  PIDS+=("$pid")
  for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  send "$port" "$WARMUP"
  callgrind_control -z "$pid" >/dev/null 2>&1
  send "$port" "$REQUESTS"
  callgrind_control -d "$pid" >/dev/null 2>&1
  # The dump taken on request is the newest file beside the output name (`.N` suffix).
  total=$(cat "$out".* 2>/dev/null | awk '/^summary:/ {s += $2} END {print s + 0}')
  stop_process "$pid" 30
  if [ -n "$KEEP_DIR" ]; then mkdir -p "$KEEP_DIR" && cat "$out".* > "$KEEP_DIR/$name.callgrind"; fi
  rm -f "$out" "$out".*
  echo $(( total / REQUESTS ))
}

declare -A result
for mode in off on; do
  exporter="{ protocol: none }"
  [ "$mode" = on ] && exporter="{ protocol: grpc, endpoint: \"http://127.0.0.1:$SINK_PORT\" }"
  result[$mode]=$(measure "tracing-$mode" "$(pwd)/$TG" "$exporter")
  log "tracing $mode: ${result[$mode]} instructions/request"
  if [ -n "$BASE" ]; then
    result[base-$mode]=$(measure "base-$mode" "$BASE" "$exporter")
    log "base, tracing $mode: ${result[base-$mode]} instructions/request"
  fi
done

echo
echo "callgrind, $REQUESTS sequential keep-alive requests after $WARMUP to warm up, all threads"
printf '%-12s %14s\n' target "instr/request"
for mode in off on; do
  printf '%-12s %14s\n' "tracing-$mode" "${result[$mode]}"
  if [ -n "$BASE" ]; then printf '%-12s %14s\n' "base-$mode" "${result[base-$mode]}"; fi
done
if [ -n "$BASE" ]; then
  for mode in off on; do
    python3 -c "import sys; a, b = int(sys.argv[1]), int(sys.argv[2]); print(f'tracing {sys.argv[3]}: this build ÷ BASE = {a / b:.3f}')" \
      "${result[$mode]}" "${result[base-$mode]}" "$mode"
  done
fi
