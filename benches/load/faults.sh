#!/usr/bin/env bash
# Fault soak: does tracegate keep answering every request while its surroundings fail? A fixed
# rate of GET requests (examples/loadgen.rs, open loop) for DURATION seconds against a release
# build with tracing on, while, on one schedule:
#   - one of the two backends of its only upstream (nginx `return 200`, `retries: 1`, active
#     health checks every second) is killed (SIGKILL) and restarted BACKEND_DOWN s later, every
#     BACKEND_EVERY s, the two in turn;
#   - the span receiver (examples/otlp_sink.rs, OTLP/gRPC) cycles through healthy, killed
#     (nothing listens on its port) and black-holed (a listener on that port that accepts and
#     never reads or answers), COLLECTOR_PHASE s each;
#   - the config is reloaded every RELOAD_EVERY s (SIGHUP; two valid files in turn, which differ
#     in a response header and in their route order), each reload checked by that header;
#   - the TLS listener's certificate and key are renewed on disk every CERT_EVERY s (openssl
#     req), and after the next reload the new certificate must be the one served (openssl
#     s_client, fingerprints compared); an HTTPS request is also sent every second.
# At the end, one table: requests sent, client-visible failures (non-2xx, transport errors,
# timeouts; with a live backend and retries they must be 0), p50/p99 latency, tracegate's RSS
# at the start and the end, spans received by the sink against requests (some loss while the
# collector is down or black-holed is expected), reloads done and verified, certificate renewals
# verified, and tracegate's own warnings. Each failed request is listed with the last fault
# event before it. Everything it starts, it stops. Exit status 1 when a client saw a failure or
# a reload or renewal did not check out.
#
# Usage: benches/load/faults.sh                 (5 minutes of load, plus the build)
#        DURATION=60 benches/load/faults.sh     (a quick trial)
#        TG=path/to/tracegate benches/load/faults.sh   (an existing binary, not built here)
# Settings: DURATION=300 RATE=1000 LG_CONNS=20 LG_TIMEOUT=10 WORKERS=2 RELOAD_EVERY=2
#           BACKEND_EVERY=20 BACKEND_DOWN=10 COLLECTOR_PHASE=10 CERT_EVERY=30 EXPORT_TIMEOUT=2s
#           OUT_DIR=/tmp/tracegate-faults.last (where the logs are kept after the run)
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-300}
RATE=${RATE:-1000}
LG_CONNS=${LG_CONNS:-20}
LG_TIMEOUT=${LG_TIMEOUT:-10}
WORKERS=${WORKERS:-2}
RELOAD_EVERY=${RELOAD_EVERY:-2}
BACKEND_EVERY=${BACKEND_EVERY:-20}
BACKEND_DOWN=${BACKEND_DOWN:-10}
COLLECTOR_PHASE=${COLLECTOR_PHASE:-10}
CERT_EVERY=${CERT_EVERY:-30}
EXPORT_TIMEOUT=${EXPORT_TIMEOUT:-2s}
OUT_DIR=${OUT_DIR:-/tmp/tracegate-faults.last}
TG_GIVEN=${TG:-}

LOAD_TAG=faults
source benches/load/lib.sh
load_init faults

load_tools nginx:nginx python3:python3 openssl:openssl curl:curl

if [ -n "$TG_GIVEN" ]; then
  log "building the span sink and the load generator (release); tracegate is $TG"
  cargo build --release --locked --example otlp_sink --example loadgen 2>&1 | tail -1 >&2
else
  log "building tracegate, the span sink and the load generator (release)"
  cargo build --release --locked --bin tracegate --example otlp_sink --example loadgen 2>&1 | tail -1 >&2
fi
LOADGEN=target/release/examples/loadgen

EVENTS="$WORK/events.log" # "unix_ms event" per fault action, for lining failures up
: > "$EVENTS"
event() { echo "$(date +%s%3N) $*" >> "$EVENTS"; log "t=$(( $(date +%s) - T0 ))s $*"; }
T0=$(date +%s)

# --- backends ----------------------------------------------------------------------------------
# One nginx process each (master_process off), so SIGKILL takes the listener down with it.
declare -A BACKEND_PID BACKEND_PORT
start_backend() { # index
  local i=$1 dir="$WORK/backend$1"
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<EOF
master_process off;
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:${BACKEND_PORT[$i]};
    location / { return 200 "backend $i\n"; }
  }
}
EOF
  "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
  BACKEND_PID[$i]=$!
  PIDS+=("$!")
  wait_port "${BACKEND_PORT[$i]}"
}
kill_now() { # pid: SIGKILL, reap, forget
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}
BACKEND_PORT[1]=$(free_port)
BACKEND_PORT[2]=$(free_port)
start_backend 1
start_backend 2

# --- span receiver: healthy (otlp_sink), down, black-holed (same port) ---------------------------
SINK_PORT=$(free_port)
SINK_RUNS=0
sink_up() { # each run counts into its own file: a new sink starts again from 0
  SINK_RUNS=$(( SINK_RUNS + 1 ))
  start_sink "$SINK_PORT" "$WORK/spans.$SINK_RUNS.count"
  wait_port "$SINK_PORT"
}
spans_total() { # spans received by every sink run so far
  cat "$WORK"/spans.*.count 2>/dev/null | awk '{ n += $1 } END { print n + 0 }'
}
cat > "$WORK/blackhole.py" <<'EOF'
# Accepts connections and never reads from them, answers or closes them.
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(128)
held = []
while True:
    held.append(s.accept()[0])
EOF
HOLE_PID=""
hole_up() {
  python3 "$WORK/blackhole.py" "$SINK_PORT" &
  HOLE_PID=$!
  PIDS+=("$HOLE_PID")
  wait_port "$SINK_PORT"
}
sink_up

# --- TLS material ------------------------------------------------------------------------------
mkdir -p "$WORK/tls"
CERT="$WORK/tls/cert.pem" KEY="$WORK/tls/key.pem"
new_cert() { # a new key and self-signed certificate for localhost; the cert file is written last
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" \
    -keyout "$WORK/tls/key.new" -out "$WORK/tls/cert.new" 2>/dev/null
  mv "$WORK/tls/key.new" "$KEY"
  mv "$WORK/tls/cert.new" "$CERT"
}
file_fingerprint() { openssl x509 -in "$CERT" -noout -fingerprint -sha256 | cut -d= -f2; }
served_fingerprint() {
  openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername localhost </dev/null 2>/dev/null \
    | openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2 || true
}
new_cert

# --- tracegate, with two configs that differ ---------------------------------------------------
HTTP_PORT=$(free_port)
TLS_PORT=$(free_port)
write_config() { # a|b file
  local which=$1 routes
  local main="  - name: all
    match: { path_prefix: / }
    response_headers: { set: { x-soak-config: $which } }
    upstream: origin"
  local other="  - name: teapot
    match: { path: /teapot }
    respond: { status: 418, body: \"config $which\\n\" }"
  if [ "$which" = a ]; then routes="$other
$main"; else routes="$main
$other"; fi
  cat > "$2.tmp" <<EOF
listen:
  - "127.0.0.1:$HTTP_PORT"
  - { addr: "127.0.0.1:$TLS_PORT", tls: { certificates: [{ cert_file: "$CERT", key_file: "$KEY" }] } }
server: { threads: $WORKERS, grace_period: 0s, shutdown_timeout: 5s, watch_config: false }
telemetry:
  exporter: { protocol: grpc, endpoint: "http://127.0.0.1:$SINK_PORT", timeout: $EXPORT_TIMEOUT }
routes:
$routes
upstreams:
  origin:
    backends: ["127.0.0.1:${BACKEND_PORT[1]}", "127.0.0.1:${BACKEND_PORT[2]}"]
    retries: 1
    connect_timeout: 1s
    health_check: { path: /, interval: 1s, timeout: 1s }
EOF
  mv "$2.tmp" "$2"
}
CONFIG="$WORK/tracegate.yaml"
write_config a "$CONFIG"
CURRENT=a
RUST_LOG=warn,tracegate=info "$TG" --config "$CONFIG" >"$WORK/tracegate.out" 2>"$WORK/tracegate.err" &
TG_PID=$!
PIDS+=("$TG_PID")
wait_port "$HTTP_PORT" # (the TLS port is waited for with a handshake below, not a bare connect)

served_config() { # the x-soak-config header of a response, or nothing
  curl -s -m 2 -o /dev/null -D - "http://127.0.0.1:$HTTP_PORT/" | tr -d '\r' \
    | awk -F': ' 'tolower($1) == "x-soak-config" { print $2 }' || true
}
until_true() { # tries command every 50 ms, up to $1 times
  local n=$1; shift
  for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.05; done
  return 1
}
PROBES=0 # the script's own HTTP requests through tracegate (they make spans too)
config_is() { PROBES=$(( PROBES + 1 )); [ "$(served_config)" = "$1" ]; }
cert_is() { [ "$(served_fingerprint)" = "$1" ]; }
if ! config_is a; then log "tracegate does not answer with config a"; exit 1; fi
if ! until_true 100 cert_is "$(file_fingerprint)"; then log "the TLS listener does not serve the certificate"; exit 1; fi

# --- the run -----------------------------------------------------------------------------------
RSS_START=$(rss_kb "$TG_PID")
RSS_MAX=$RSS_START
SPANS_START=$(spans_total)
log "load: $RATE req/s on $LG_CONNS connections for $DURATION s; tracegate pid $TG_PID, RSS $RSS_START KiB"
"$LOADGEN" --url "http://127.0.0.1:$HTTP_PORT/" --rate "$RATE" --duration "$DURATION" \
  --connections "$LG_CONNS" --timeout "$LG_TIMEOUT" --failures "$WORK/failures.log" \
  > "$WORK/loadgen.out" 2> "$WORK/loadgen.err" &
LG_PID=$!
PIDS+=("$LG_PID")

PROBES=0 HUPS=0 RELOADS_OK=0 RELOADS_BAD=0 RENEWALS=0 RENEWALS_OK=0 RENEWALS_BAD=0
KILLS=0 RESTARTS=0 TLS_OK=0 TLS_BAD=0 COLLECTOR_KILLS=0 HOLES=0 RESTORES=0
COLLECTOR=healthy DOWN_BACKEND="" UP_AT=0 NEXT_VICTIM=1 PENDING_CERT=""
T0=$(date +%s) TICK0=$(date +%s.%N)
for t in $(seq 1 "$DURATION"); do
  # Each tick starts on the second, whatever the previous one took.
  sleep "$(awk -v t0="$TICK0" -v t="$t" -v now="$(date +%s.%N)" 'BEGIN { d = t0 + t - now; print (d > 0 ? d : 0) }')"
  alive "$TG_PID" || { event "tracegate exited"; break; }

  # Backends: kill one every BACKEND_EVERY s, restart it BACKEND_DOWN s later.
  if [ -z "$DOWN_BACKEND" ] && (( t % BACKEND_EVERY == 0 && t + BACKEND_DOWN <= DURATION )); then
    DOWN_BACKEND=$NEXT_VICTIM NEXT_VICTIM=$(( 3 - NEXT_VICTIM )) UP_AT=$(( t + BACKEND_DOWN ))
    kill_now "${BACKEND_PID[$DOWN_BACKEND]}"
    KILLS=$(( KILLS + 1 )); event "backend $DOWN_BACKEND killed"
  elif [ -n "$DOWN_BACKEND" ] && (( t >= UP_AT )); then
    start_backend "$DOWN_BACKEND"
    RESTARTS=$(( RESTARTS + 1 )); event "backend $DOWN_BACKEND restarted"
    DOWN_BACKEND=""
  fi

  # Collector: healthy -> killed -> black-holed -> healthy, COLLECTOR_PHASE s each.
  if (( t % COLLECTOR_PHASE == 0 )); then
    case $COLLECTOR in
      healthy) kill_now "$SINK_PID"; COLLECTOR=down; COLLECTOR_KILLS=$(( COLLECTOR_KILLS + 1 ))
               event "collector killed" ;;
      down)    hole_up; COLLECTOR=blackholed; HOLES=$(( HOLES + 1 )); event "collector black-holed" ;;
      blackholed) kill_now "$HOLE_PID"; sink_up; COLLECTOR=healthy; RESTORES=$(( RESTORES + 1 ))
               event "collector restored" ;;
    esac
  fi

  # Certificate renewal: new files on disk; the next reload must serve them.
  if (( t % CERT_EVERY == 0 )); then
    new_cert
    PENDING_CERT=$(file_fingerprint)
    RENEWALS=$(( RENEWALS + 1 )); event "certificate renewed on disk"
  fi

  # Reload: the other config, SIGHUP, then the header must change.
  if (( t % RELOAD_EVERY == 0 )); then
    if [ "$CURRENT" = a ]; then CURRENT=b; else CURRENT=a; fi
    write_config "$CURRENT" "$CONFIG"
    kill -HUP "$TG_PID"
    HUPS=$(( HUPS + 1 ))
    if until_true 40 config_is "$CURRENT"; then RELOADS_OK=$(( RELOADS_OK + 1 ))
    else RELOADS_BAD=$(( RELOADS_BAD + 1 )); event "reload to config $CURRENT not seen after 2 s"; fi
    if [ -n "$PENDING_CERT" ]; then
      if until_true 40 cert_is "$PENDING_CERT"; then RENEWALS_OK=$(( RENEWALS_OK + 1 )); event "renewed certificate served"
      else RENEWALS_BAD=$(( RENEWALS_BAD + 1 )); event "renewed certificate NOT served after 2 s"; fi
      PENDING_CERT=""
    fi
  fi

  # One HTTPS request a second.
  if curl -sk -m 2 -o /dev/null -w '%{http_code}' --resolve "localhost:$TLS_PORT:127.0.0.1" \
       "https://localhost:$TLS_PORT/" | grep -q '^2'; then TLS_OK=$(( TLS_OK + 1 ))
  else TLS_BAD=$(( TLS_BAD + 1 )); event "HTTPS request failed"; fi

  r=$(rss_kb "$TG_PID"); if (( r > RSS_MAX )); then RSS_MAX=$r; fi
done

log "load done; waiting for the generator"
wait "$LG_PID" || true
forget_pid "$LG_PID"
RSS_END=$(rss_kb "$TG_PID")
# Restore what is down, so queued spans can still be delivered and the counts settle.
if [ -n "$DOWN_BACKEND" ]; then start_backend "$DOWN_BACKEND"; event "backend $DOWN_BACKEND restarted (end)"; fi
case $COLLECTOR in
  down) sink_up; event "collector restored (end)" ;;
  blackholed) kill_now "$HOLE_PID"; sink_up; event "collector restored (end)" ;;
esac
COUNT_FILE="$WORK/spans.$SINK_RUNS.count"
spans_settled >/dev/null
SPANS=$(( $(spans_total) - SPANS_START ))
APPLIED=$(grep -c 'config reloaded (SIGHUP)' "$WORK/tracegate.err" || true)
REFUSED=$(grep -c 'config reload (.*) refused' "$WORK/tracegate.err" || true)
stop_process "$TG_PID" 20
STOPPED=$(grep -o 'stopped: .*' "$WORK/tracegate.err" || echo "no stopped line")

python3 - "$WORK/loadgen.out" "$WORK/failures.log" "$EVENTS" "$WORK/tracegate.err" <<EOF
import collections, os, re, sys
lg_out, failures, events, tg_err = sys.argv[1:5]
line = open(lg_out).read().strip()
r = {k: v for k, v in (t.split("=", 1) for t in line.split() if "=" in t)}
if not r:
    print("loadgen printed nothing:", open(lg_out.replace(".out", ".err")).read()); sys.exit(1)
sent, ok, non2xx, errors, timeouts = (int(r[k]) for k in ("sent", "ok", "non2xx", "errors", "timeouts"))
responses = ok + non2xx
spans = $SPANS
probes = $PROBES + $TLS_OK + $TLS_BAD
rows = [
    ("duration, rate", f"$DURATION s, $RATE req/s on $LG_CONNS connections, $WORKERS threads"),
    ("requests sent", f"{sent}"),
    ("2xx", f"{ok}"),
    ("client-visible failures", f"{non2xx + errors} (non-2xx {non2xx}, transport errors {errors - timeouts}, timeouts {timeouts})"),
    ("latency p50 / p99 / p99.9 / max", f"{int(r['p50_us'])/1000:.2f} / {int(r['p99_us'])/1000:.2f} / {int(r['p999_us'])/1000:.2f} / {int(r['max_us'])/1000:.2f} ms"),
    ("loadgen lag p99 (not counted)", f"{int(r['lag_p99_us'])/1000:.2f} ms"),
    ("tracegate RSS start / end / max", f"{$RSS_START/1024:.1f} / {$RSS_END/1024:.1f} / {$RSS_MAX/1024:.1f} MiB"),
    ("spans received by the sink", f"{spans} for {responses} loadgen + {probes} probe responses: {spans / (responses + probes):.3f} per response, "
                                   f"{100 * spans / (2 * (responses + probes)):.1f} % of a SERVER and a CLIENT span each" if responses else f"{spans}"),
    ("tracegate's own account", "$STOPPED"),
    ("reloads (SIGHUP)", f"$HUPS sent, $APPLIED applied (log), $RELOADS_OK verified by header, $RELOADS_BAD not seen, $REFUSED refused"),
    ("certificate renewals", f"$RENEWALS on disk, $RENEWALS_OK verified served, $RENEWALS_BAD not served"),
    ("HTTPS requests (1/s)", f"$TLS_OK ok, $TLS_BAD failed"),
    ("backend kills / restarts", f"$KILLS / $RESTARTS"),
    ("collector kills / black-holes / restores", f"$COLLECTOR_KILLS / $HOLES / $RESTORES"),
]
w = max(len(k) for k, _ in rows)
print()
print(f"{'':{w}}   fault soak")
print("-" * (w + 70))
for k, v in rows:
    print(f"{k:<{w}} | {v}")
print()
ev = []
for l in open(events):
    ms, what = l.rstrip("\n").split(" ", 1)
    ev.append((int(ms), what))
fails = [l.rstrip("\n").split(" ", 2) for l in open(failures) if l.strip()] if os.path.exists(failures) else []
if fails:
    print(f"failed requests ({len(fails)}), grouped by kind and by the last fault event before them:")
    groups = collections.Counter()
    for ms, kind, detail in (f + [""] * (3 - len(f)) for f in fails):
        before = [e for e in ev if e[0] <= int(ms)]
        last = f"{before[-1][1]} ({(int(ms) - before[-1][0]) / 1000:.1f} s before)" if before else "before any fault"
        groups[(kind, detail[:120], last.split(" (")[0])] += 1
    for (kind, detail, last), n in groups.most_common(20):
        print(f"  {n:6}  {kind} {detail}  after: {last}")
    print()
warn = collections.Counter()
for l in open(tg_err):
    if " WARN " in l or " ERROR " in l:
        msg = re.sub(r"^\S+\s+(WARN|ERROR)\s+", r"\1 ", l.strip())
        msg = re.sub(r"\d+(\.\d+)?(ms|s|µs)?", "N", msg)
        warn[msg[:160]] += 1
if warn:
    print("tracegate warnings and errors (numbers replaced by N):")
    for m, n in warn.most_common(15):
        print(f"  {n:6}  {m}")
    errors = [l.strip() for l in open(tg_err) if " ERROR " in l and "span export failed" not in l]
    if errors:
        print("tracegate's ERROR lines other than span exports (first 10, as logged):")
        for l in errors[:10]:
            print("  " + l[:400])
EOF

mkdir -p "$OUT_DIR"
cp "$WORK/tracegate.err" "$EVENTS" "$WORK/loadgen.out" "$OUT_DIR/"
[ -f "$WORK/failures.log" ] && cp "$WORK/failures.log" "$OUT_DIR/"
log "logs kept in $OUT_DIR (tracegate.err, events.log, failures.log, loadgen.out)"

FAILED=$(awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "non2xx" || kv[1] == "errors") n += kv[2] } } END { print n + 0 }' "$WORK/loadgen.out")
if (( FAILED > 0 || RELOADS_BAD > 0 || RENEWALS_BAD > 0 || TLS_BAD > 0 )); then
  log "FAILED: $FAILED client-visible failures, $RELOADS_BAD reloads and $RENEWALS_BAD renewals not seen, $TLS_BAD HTTPS failures"
  exit 1
fi
log "passed"
