# Shared parts of the load benchmarks (run.sh, steady.sh). Sourced, not run: it expects the
# repository root as the working directory and `set -euo pipefail`, and uses WORKERS (threads of
# each proxy) and LOAD_TAG (the log prefix).
#
#   load_init NAME               temp dir $WORK, the PIDS list and the trap that stops them all
#   load_tools CMD:PACKAGE...    installs the missing commands from Debian (and scripts/deps.sh)
#   start_origin                 nginx answering `return 200`        -> ORIGIN_PORT ORIGIN_PID
#   start_nginx_proxy            nginx proxy to it, upstream keepalive -> NGINX_PORT NGINX_PID
#   start_sink [PORT] [FILE]     examples/otlp_sink                   -> SINK_PORT SINK_PID COUNT_FILE
#   start_tracegate NAME YAML [EXTRA] [MW]  prints "PID PORT"; YAML is the telemetry.exporter
#                                value, EXTRA more top-level config keys (access_log, admin,
#                                middlewares, ...), MW the route's `middlewares:` list as YAML
#                                (e.g. "[office, cors]", defined in EXTRA); without it the route
#                                lists none, as before
#   start_floor                  examples/floor (the smallest Pingora proxy) -> FLOOR_PORT FLOOR_PID
#   start_targets                all of the above, tracegate off and on (OTLP/gRPC to the sink),
#                                and waits until each accepts  -> also OFF_PID OFF_PORT ON_PID ON_PORT
#   stop_process PID [SECS]      SIGTERM, waits for the exit, drops PID from PIDS (forget_pid)
#   free_port, wait_port PORT, alive PID, cpu_ticks PID, rss_kb PID, spans_now, spans_settled,
#   to_us VALUE

LOAD_TAG=${LOAD_TAG:-load}
log() { echo "[$LOAD_TAG] $*" >&2; }

load_init() { # name
  WORK=$(mktemp -d "/tmp/tracegate-$1.XXXXXX")
  PIDS=()
  trap load_cleanup EXIT
  trap 'exit 130' INT TERM
}

load_cleanup() {
  for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}

load_tools() { # cmd:package ...
  scripts/deps.sh
  local missing=() pair cmd
  for pair in "$@"; do
    cmd=${pair%%:*}
    command -v "$cmd" >/dev/null 2>&1 && [ -x "$(command -v "$cmd")" ] || missing+=("${pair#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    local SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    # Keep the package from starting its own nginx service on port 80 (a policy-rc.d already
    # there is left as it is).
    local policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      policy=/usr/sbin/policy-rc.d
      printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
      $SUDO chmod +x "$policy"
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    if [ -n "$policy" ]; then $SUDO rm -f "$policy"; fi
  fi
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

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
start_origin() {
  ORIGIN_PORT=$(free_port)
  mkdir -p "$WORK/origin"
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
  "$NGINX" -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -e "$WORK/origin/error.log" &
  ORIGIN_PID=$!
  PIDS+=("$ORIGIN_PID")
}

start_nginx_proxy() {
  NGINX_PORT=$(free_port)
  mkdir -p "$WORK/proxy"
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
      # The forwarding headers tracegate sends for an untrusted client (src/routing/forwarded.rs),
      # so both proxies do the same work per request.
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header Forwarded "for=\$remote_addr;proto=\$scheme;host=\$host";
    }
  }
}
EOF
  "$NGINX" -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" -e "$WORK/proxy/error.log" &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
}

# --- span sink and tracegate ---------------------------------------------------------------------
SINK=target/release/examples/otlp_sink
TG=${TG:-target/release/tracegate}

start_sink() { # [port] [count file]
  SINK_PORT=${1:-$(free_port)}
  COUNT_FILE=${2:-$WORK/spans.count}
  "$SINK" "127.0.0.1:$SINK_PORT" "$COUNT_FILE" &
  SINK_PID=$!
  PIDS+=("$SINK_PID")
}

start_tracegate() { # name exporter-yaml [extra-yaml] [middlewares-list-yaml] -> prints "pid port"; logs in $WORK/name.err
  local name=$1 exporter=$2 extra=${3:-} mw=${4:-} port
  port=$(free_port)
  # The route's `middlewares:` line only when asked for, so other callers' configs do not change.
  if [ -n "$mw" ]; then mw=$'\n'"    middlewares: $mw"; fi
  cat > "$WORK/$name.yaml" <<EOF
listen: ["127.0.0.1:$port"]
server: { threads: $WORKERS, grace_period: 0s }
telemetry:
  exporter: $exporter
routes:
  - name: all
    match: { path_prefix: / }$mw
    upstream: origin
upstreams:
  origin: { backends: ["127.0.0.1:$ORIGIN_PORT"] }
$extra
EOF
  # Warnings only, except tracegate's own lines (`stopped: N spans exported, …` at exit).
  RUST_LOG=warn,tracegate=info "$TG" --config "$WORK/$name.yaml" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  echo "$! $port"
}

FLOOR=target/release/examples/floor

start_floor() {
  FLOOR_PORT=$(free_port)
  "$FLOOR" "127.0.0.1:$FLOOR_PORT" "127.0.0.1:$ORIGIN_PORT" "$WORKERS" >"$WORK/floor.out" 2>"$WORK/floor.err" &
  FLOOR_PID=$!
  PIDS+=("$FLOOR_PID")
}

start_targets() {
  start_origin
  start_nginx_proxy
  start_sink
  read -r OFF_PID OFF_PORT < <(start_tracegate off "{ protocol: none }")
  PIDS+=("$OFF_PID")
  read -r ON_PID ON_PORT < <(start_tracegate on "{ protocol: grpc, endpoint: \"http://127.0.0.1:$SINK_PORT\" }")
  PIDS+=("$ON_PID")
  local p
  for p in "$ORIGIN_PORT" "$NGINX_PORT" "$SINK_PORT" "$OFF_PORT" "$ON_PORT"; do wait_port "$p"; done
}

alive() { # the process exists and is not a zombie
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)
  [ -n "$state" ] && [ "$state" != Z ]
}

stop_process() { # pid [seconds to wait]: SIGTERM, wait for the exit, forget the pid
  local pid=$1 wait_s=${2:-10}
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $(( wait_s * 10 ))); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then log "pid $pid still runs after ${wait_s}s; killing it"; kill -KILL "$pid" 2>/dev/null || true; fi
  forget_pid "$pid"
}

forget_pid() { # the process is stopped: the cleanup trap must not signal its pid again
  local kept=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  PIDS=("${kept[@]}")
}

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

rss_kb() { # resident set size of a process, in KiB (0 when it is gone)
  local v
  v=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true)
  echo "${v:-0}"
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
