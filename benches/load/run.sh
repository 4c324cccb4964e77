#!/usr/bin/env bash
# Load benchmark: tracegate with tracing on vs tracing off vs nginx, side by side, in one run.
#
# Starts, all on 127.0.0.1:
#   - an origin: nginx answering `return 200` (1 worker);
#   - nginx as a reverse proxy to it (WORKERS workers, upstream keep-alive, the forwarding
#     headers tracegate sends);
#   - the "Pingora floor" (examples/floor.rs: the smallest ProxyHttp, no context, one peer);
#   - tracegate with tracing off (exporter none) and with tracing on (100 % sampled, OTLP/gRPC
#     to a live receiver that counts spans: examples/otlp_sink.rs), WORKERS threads each;
#   - tracegate with everything on ("all-on"): tracing on as above, the JSON access log to a
#     file, and the admin listener's /metrics scraped (OpenMetrics, with exemplars) every
#     second during the run;
#   - tracegate with tracing on and the trace viewer ("viewer"): tracing on exactly as above
#     (the same exporter, to the same receiver) plus `admin: { traces: {} }` (the store of recent
#     traces, default limits), with its `GET /traces/summary` and the page `GET /traces` fetched
#     every second during the run, as a person with the page open would (the page refreshes
#     itself every 2 s). The admin listener is a thread of the proxy's process, so its CPU is in
#     the viewer's CPU µs per request. Budget: req/s ≥ 0.95 × tracing on's;
#   - tracegate with tracing on and route middlewares ("mw-local"): tracing on exactly as above,
#     the route `all` running `[office, limit, cors]`: ip_allow of 127.0.0.0/8 (nothing is
#     refused), a local rate_limit by client_ip so high that nothing is limited (the bucket is
#     still checked and its RateLimit headers written on every response), and cors (wrk sends no
#     Origin: the answer gets `Vary: Origin`). Tracing on is the same route without them.
#     Budget: req/s ≥ 0.95 × tracing on's;
#   - the same with the limit's buckets in Redis ("mw-redis", `[office, shared, cors]`): a real
#     redis-server on a free port (no persistence), one EVALSHA round trip per request. No
#     budget, measured; the redis-server's own CPU µs per request is reported too, as it takes
#     cores the proxy and wrk share;
# then runs ROUNDS alternating rounds of wrk against each proxy and prints one table of medians:
# req/s, p50, p99, CPU µs per request (CPU time of the proxy's processes ÷ requests), spans
# received ÷ requests, each with its ratio to nginx and to tracing off. For tracing on, also the
# span receiver's CPU µs per request: it runs on the same machine as the proxy and wrk, so the
# CPU it takes is missing from them (tracing off and nginx have no receiver to pay for).
# Everything it starts, it stops. Loopback only; runs for about ROUNDS × targets (8, or 10 with
# BASE) × (DURATION + 3) s.
#
# Usage: benches/load/run.sh            (ROUNDS=3 DURATION=10 CONNS=50 WORKERS=1 by default)
#        PERF_DIR=/tmp/prof benches/load/run.sh   also records a cpu-clock profile (perf, with
#        call graphs) of each proxy during round 1, as PERF_DIR/<target>.perf.data
#        BASE=/path/to/tracegate benches/load/run.sh   also runs that binary (an earlier build,
#        e.g. from a worktree of the commit before a change), tracing off and on with the same
#        configs, in the same rotation, and prints each build's ratio to it: a before/after
#        comparison in one run, so the machine's drift does not count as a change
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
WORKERS=${WORKERS:-1}
WRK_THREADS=${WRK_THREADS:-1}
PERF_DIR=${PERF_DIR:-}
BASE=${BASE:-}

LOAD_TAG=load
source benches/load/lib.sh
load_init load

# --- what it needs -----------------------------------------------------------------------------
tools=(wrk:wrk nginx:nginx python3:python3 curl:curl redis-server:redis-server redis-cli:redis-tools)
if [ -n "$PERF_DIR" ]; then tools+=(perf:linux-perf); fi
load_tools "${tools[@]}"

log "building tracegate and the span sink (release)"
cargo build --release --locked --bin tracegate --example otlp_sink --example floor 2>&1 | tail -1 >&2

# --- origin, nginx proxy, span sink and tracegate -------------------------------------------------
start_targets
start_floor
ADMIN_PORT=$(free_port)
read -r ALL_PID ALL_PORT < <(start_tracegate all-on "{ protocol: grpc, endpoint: \"http://127.0.0.1:$SINK_PORT\" }" "\
access_log: { path: \"$WORK/access.log\", format: json }
admin: { listen: \"127.0.0.1:$ADMIN_PORT\" }")
PIDS+=("$ALL_PID")
for p in "$FLOOR_PORT" "$ALL_PORT" "$ADMIN_PORT"; do wait_port "$p"; done
# The scrape a Prometheus server would make, every second, for the whole run.
( while :; do
    curl -s -o /dev/null -H 'Accept: application/openmetrics-text' "http://127.0.0.1:$ADMIN_PORT/metrics" || true
    sleep 1
  done ) &
PIDS+=("$!")
VIEWER_ADMIN_PORT=$(free_port)
read -r VIEWER_PID VIEWER_PORT < <(start_tracegate viewer "{ protocol: grpc, endpoint: \"http://127.0.0.1:$SINK_PORT\" }" "\
admin: { listen: \"127.0.0.1:$VIEWER_ADMIN_PORT\", traces: {} }")
PIDS+=("$VIEWER_PID")
for p in "$VIEWER_PORT" "$VIEWER_ADMIN_PORT"; do wait_port "$p"; done
# A person with the viewer open, every second for the whole run: the list as JSON (what the page
# refreshes from) and the page itself. Each answer that is not a 200 is counted.
VIEWER_FAILS="$WORK/viewer.fails"
: > "$VIEWER_FAILS"
( while :; do
    for path in /traces/summary /traces; do
      code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$VIEWER_ADMIN_PORT$path" || true)
      [ "$code" = 200 ] || echo "$path $code" >> "$VIEWER_FAILS"
    done
    sleep 1
  done ) &
PIDS+=("$!")
# Route middlewares, against a Redis of its own for the shared limit.
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --dir "$WORK" >"$WORK/redis.out" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
MIDDLEWARES="\
middlewares:
  office: { ip_allow: [\"127.0.0.0/8\"] }
  limit: { rate_limit: { average: 100000000, period: 1s, burst: 100000000, key: client_ip } }
  shared: { rate_limit: { average: 100000000, period: 1s, burst: 100000000, key: client_ip, store: \"redis://127.0.0.1:$REDIS_PORT/0\" } }
  cors: { cors: { allow_origins: [\"https://app.example.com\"], allow_methods: [GET, POST], allow_headers: [content-type], max_age: 10m } }"
read -r MWL_PID MWL_PORT < <(start_tracegate mw-local "{ protocol: grpc, endpoint: \"http://127.0.0.1:$SINK_PORT\" }" \
  "$MIDDLEWARES" "[office, limit, cors]")
PIDS+=("$MWL_PID")
read -r MWR_PID MWR_PORT < <(start_tracegate mw-redis "{ protocol: grpc, endpoint: \"http://127.0.0.1:$SINK_PORT\" }" \
  "$MIDDLEWARES" "[office, shared, cors]")
PIDS+=("$MWR_PID")
for p in "$REDIS_PORT" "$MWL_PORT" "$MWR_PORT"; do wait_port "$p"; done
redis_calls() { # scripts Redis ran (EVALSHA, and EVAL when it had to load the script)
  redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' |
    awk -F'[:=,]' '/^cmdstat_eval(sha)?:/ {n += $3} END {print n + 0}'
}
# The middlewares must really run: a request from an allowed Origin gets the limit's and cors'
# headers, and the shared limit asks Redis.
for t in "mw-local $MWL_PORT" "mw-redis $MWR_PORT"; do
  read -r name port <<< "$t"
  c0=$(redis_calls)
  head=$(curl -s -D - -o /dev/null -H 'Origin: https://app.example.com' "http://127.0.0.1:$port/" | tr -d '\r')
  c1=$(redis_calls)
  for h in '^HTTP/1.1 200' '^ratelimit-policy:' '^access-control-allow-origin: https://app.example.com'; do
    grep -qi "$h" <<< "$head" || { log "$name: no ${h#^} in the answer:"; echo "$head" >&2; exit 1; }
  done
  if [ "$name" = mw-redis ] && [ "$c1" -le "$c0" ]; then log "mw-redis: the check did not reach Redis"; exit 1; fi
done
targets=("nginx $NGINX_PORT $NGINX_PID" "floor $FLOOR_PORT $FLOOR_PID" "tracing-off $OFF_PORT $OFF_PID"
  "tracing-on $ON_PORT $ON_PID" "all-on $ALL_PORT $ALL_PID" "viewer $VIEWER_PORT $VIEWER_PID"
  "mw-local $MWL_PORT $MWL_PID" "mw-redis $MWR_PORT $MWR_PID")
if [ -n "$BASE" ]; then
  [ -x "$BASE" ] || { log "BASE=$BASE is not an executable"; exit 64; }
  read -r BASE_OFF_PID BASE_OFF_PORT < <(TG=$BASE start_tracegate base-off "{ protocol: none }")
  PIDS+=("$BASE_OFF_PID")
  read -r BASE_ON_PID BASE_ON_PORT < <(TG=$BASE start_tracegate base-on "{ protocol: grpc, endpoint: \"http://127.0.0.1:$SINK_PORT\" }")
  PIDS+=("$BASE_ON_PID")
  for p in "$BASE_OFF_PORT" "$BASE_ON_PORT"; do wait_port "$p"; done
  targets+=("base-off $BASE_OFF_PORT $BASE_OFF_PID" "base-on $BASE_ON_PORT $BASE_ON_PID")
fi

# --- measuring -----------------------------------------------------------------------------------
RESULTS="$WORK/results.tsv"
: > "$RESULTS"

run_one() { # round target port pid
  local round=$1 target=$2 port=$3 pid=$4 out t0 t1 s0 s1 k0 k1 r0 r1 c0 c1 reqs rps p50 p99
  s0=$(spans_settled)
  k0=$(cpu_ticks "$SINK_PID")
  r0=$(cpu_ticks "$REDIS_PID")
  c0=$(redis_calls)
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
  k1=$(cpu_ticks "$SINK_PID")
  r1=$(cpu_ticks "$REDIS_PID")
  c1=$(redis_calls)
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(to_us "$(echo "$out" | awk '$1 == "50%" {print $2}')")
  p99=$(to_us "$(echo "$out" | awk '$1 == "99%" {print $2}')")
  if echo "$out" | grep -q "Non-2xx"; then log "$target: non-2xx responses!"; echo "$out" >&2; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$target" "$reqs" "$rps" "$p50" "$p99" \
    "$(( (t1 - t0) ))" "$(( s1 - s0 ))" "$(( k1 - k0 ))" "$(( r1 - r0 ))" "$(( c1 - c0 ))" >> "$RESULTS"
  log "round $round $target: $rps req/s"
}

log "warming up"
for t in "${targets[@]}"; do
  read -r _ port _ <<< "$t"
  wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$port/" >/dev/null
done

n=${#targets[@]}
for round in $(seq 1 "$ROUNDS"); do
  # Rotate the order each round so no target always runs first or last.
  for i in $(seq 0 $(( n - 1 ))); do
    read -r name port pid <<< "${targets[$(( (i + round - 1) % n ))]}"
    run_one "$round" "$name" "$port" "$pid"
  done
done

# Spans dropped or lost inside tracegate, from its own counters at shutdown.
stop_process "$ON_PID" 10
stopped=$(grep -o 'stopped: .*' "$WORK/on.err" || true)
scrapes=$(curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | grep -c '^http_server_request_duration_seconds_bucket' || true)
stop_process "$ALL_PID" 10
access_lines=$(wc -l < "$WORK/access.log" 2>/dev/null || echo 0)
stopped_all=$(grep -o 'stopped: .*' "$WORK/all-on.err" || true)
viewer_stored=$(curl -s "http://127.0.0.1:$VIEWER_ADMIN_PORT/traces/summary?limit=1" | python3 -c '
import json, sys
s = json.load(sys.stdin)["stored"]
print("{traces} traces, {spans} spans, {mib:.1f} MiB (max {max_traces} traces, {max_mib:.0f} MiB), "
      "{evicted} evicted, {dropped_spans} spans dropped".format(
          mib=s["bytes"] / 1048576, max_mib=s["max_bytes"] / 1048576, **s))' || true)
viewer_fails=$(wc -l < "$VIEWER_FAILS")
stop_process "$VIEWER_PID" 10
stopped_viewer=$(grep -o 'stopped: .*' "$WORK/viewer.err" || true)
stop_process "$MWL_PID" 10
stop_process "$MWR_PID" 10
stopped_mw=""
for name in mw-local mw-redis; do
  stopped_mw+=$(grep -o 'stopped: .*' "$WORK/$name.err" | sed "s/^/$name at exit: /" || true)$'\n'
  # Its warnings and errors (a Redis it could not reach, …) are worth seeing; not its start-up lines.
  grep -E ' (WARN|ERROR) ' "$WORK/$name.err" | sed "s/^/[$LOAD_TAG] $name: /" >&2 || true
done

python3 - "$RESULTS" "$CLK_TCK" "$ROUNDS" "$DURATION" "$CONNS" "$WORKERS" "$stopped" "$stopped_all" "$access_lines" "$scrapes" \
  "$viewer_stored" "$viewer_fails" "$stopped_viewer" "$stopped_mw" <<'EOF'
import statistics, sys, platform, os
path, clk, rounds, duration, conns, workers, stopped, stopped_all, access_lines, scrapes = sys.argv[1:11]
viewer_stored, viewer_fails, stopped_viewer, stopped_mw = sys.argv[11:15]
clk = int(clk)
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
by = {}
for r, target, reqs, rps, p50, p99, ticks, spans, sink_ticks, redis_ticks, redis_calls in rows:
    reqs = int(reqs)
    by.setdefault(target, []).append(dict(
        rps=float(rps), p50=float(p50), p99=float(p99),
        cpu=int(ticks) * 1e6 / clk / reqs, spans=int(spans) / reqs,
        sink=int(sink_ticks) * 1e6 / clk / reqs,
        redis=int(redis_ticks) * 1e6 / clk / reqs, calls=int(redis_calls) / reqs))
med = {t: {k: statistics.median(v[k] for v in vs) for k in vs[0]} for t, vs in by.items()}
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"\nmachine: {os.cpu_count()} cores, {cpu_model}, {platform.system()} {platform.release()}")
print(f"wrk -c{conns} -d{duration}s, {rounds} alternating rounds, medians; proxies with {workers} worker(s)/thread(s); origin nginx return 200\n")
hdr = f"{'target':<12} {'req/s':>9} {'p50 µs':>8} {'p99 µs':>8} {'CPU µs/req':>10} {'spans/req':>9} {'sink µs/req':>11} | {'req/s ÷nginx':>12} {'CPU ÷nginx':>10} {'req/s ÷off':>10} {'CPU ÷off':>8}"
print(hdr); print("-" * len(hdr))
for t in ["nginx", "floor", "tracing-off", "tracing-on", "all-on", "viewer", "mw-local", "mw-redis", "base-off", "base-on"]:
    m = med.get(t)
    if not m: continue
    n, o = med["nginx"], med["tracing-off" if not t.startswith("base") else "base-off"]
    traced = t.endswith("-on") or t == "viewer" or t.startswith("mw-")
    spans = f"{m['spans']:.3f}" if traced else "-"
    sink = f"{m['sink']:.1f}" if traced else "-"
    print(f"{t:<12} {m['rps']:>9.0f} {m['p50']:>8.0f} {m['p99']:>8.0f} {m['cpu']:>10.1f} {spans:>9} {sink:>11} | "
          f"{m['rps']/n['rps']:>12.2f} {m['cpu']/n['cpu']:>10.2f} {m['rps']/o['rps']:>10.2f} {m['cpu']/o['cpu']:>8.2f}")
print("\nspans/req: spans the OTLP receiver got ÷ requests (2.000 = a SERVER and a CLIENT span for every request)")
print("sink µs/req: CPU of the OTLP receiver (examples/otlp_sink, same machine) ÷ requests, taken from the 2 cores the proxy and wrk share")
if "base-off" in med:
    print("\nthis build ÷ BASE (same rotation):")
    for mode in ["off", "on"]:
        a, b = med[f"tracing-{mode}"], med[f"base-{mode}"]
        print(f"  tracing {mode:<3}  req/s {a['rps']/b['rps']:.3f}   CPU µs/req {a['cpu']/b['cpu']:.3f}   "
              f"p99 {a['p99']/b['p99']:.3f}   ({a['cpu']:.1f} vs {b['cpu']:.1f} µs/req)")
    print("  (base rows: their ÷off columns are against base-off)")
f, on, a = med.get("floor"), med.get("tracing-on"), med.get("all-on")
if f:
    o = med["tracing-off"]
    print(f"\ntracing-off ÷ floor (tracegate's own cost over Pingora's):  req/s {o['rps']/f['rps']:.3f}   "
          f"CPU µs/req {o['cpu']/f['cpu']:.3f}   ({o['cpu']:.1f} vs {f['cpu']:.1f} µs/req)")
if a and on:
    print(f"all-on ÷ tracing-on (access log + metrics, budget req/s ≥ 0.95, CPU ≤ 1.05):  req/s {a['rps']/on['rps']:.3f}   "
          f"CPU µs/req {a['cpu']/on['cpu']:.3f}   p99 {a['p99']/on['p99']:.3f}   ({a['cpu']:.1f} vs {on['cpu']:.1f} µs/req)")
    print(f"  all-on wrote {access_lines} access-log lines; its last scrape had {scrapes} request-duration bucket lines")
v = med.get("viewer")
if v and on:
    r = v['rps'] / on['rps']
    print(f"viewer ÷ tracing-on (tracing on + viewer, budget req/s ≥ 0.95× tracing on alone):  req/s {r:.3f} "
          f"({'within' if r >= 0.95 else 'OVER'} budget)   CPU µs/req {v['cpu']/on['cpu']:.3f}   p99 {v['p99']/on['p99']:.3f}   "
          f"({v['cpu']:.1f} vs {on['cpu']:.1f} µs/req)")
    print(f"  viewer's store at the end: {viewer_stored or '?'}; /traces/summary and /traces fetched every second, "
          f"{viewer_fails} answers not 200")
def within(r):
    return "within budget" if r >= 0.95 else "NOT within budget"
ml, mr = med.get("mw-local"), med.get("mw-redis")
if ml and on:
    r = ml['rps'] / on['rps']
    print(f"mw-local ÷ tracing-on (ip_allow + local rate_limit + cors, budget req/s ≥ 0.95× the route without them):  "
          f"req/s {r:.3f} ({within(r)})   CPU µs/req {ml['cpu']/on['cpu']:.3f}   p99 {ml['p99']/on['p99']:.3f}   "
          f"({ml['cpu']:.1f} vs {on['cpu']:.1f} µs/req)")
if mr and on:
    total = mr['cpu'] + mr['redis']
    print(f"mw-redis ÷ tracing-on (ip_allow + Redis rate_limit + cors, measured):  req/s {mr['rps']/on['rps']:.3f}   "
          f"CPU µs/req {mr['cpu']/on['cpu']:.3f}   p99 {mr['p99']/on['p99']:.3f}   ({mr['cpu']:.1f} vs {on['cpu']:.1f} µs/req)")
    print(f"  redis-server (same machine) during mw-redis rounds: {mr['redis']:.1f} CPU µs/req, "
          f"{mr['calls']:.3f} scripts run per request; proxy + redis {total:.1f} µs/req = {total/on['cpu']:.3f}× tracing-on's CPU")
# One line per pipeline that stopped (all-on has two: the access log's and the spans').
for name, lines in [("tracing-on", stopped), ("all-on", stopped_all), ("viewer", stopped_viewer)]:
    for line in lines.splitlines():
        print(f"{name} at exit: {line}")
for line in stopped_mw.splitlines():
    if line.strip():
        print(line)
EOF
if [ -n "$PERF_DIR" ]; then
  echo "note: round 1 ran under perf (profiles in $PERF_DIR); compare figures only from runs without PERF_DIR"
fi
