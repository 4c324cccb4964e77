#!/usr/bin/env bash
# Fixed-rate load benchmark: the latency tracegate adds below saturation, whether every span
# arrives, and whether memory stays flat, with the collector healthy, down and black-holed.
# (run.sh measures the maximum throughput instead, with closed-loop wrk.)
#
# Starts, all on 127.0.0.1, as run.sh does (shared parts in lib.sh): an nginx origin answering
# `return 200`; nginx as a reverse proxy (WORKERS workers, upstream keep-alive); tracegate with
# tracing off and with tracing on (100 % sampled, OTLP/gRPC to examples/otlp_sink.rs, which counts
# spans), WORKERS threads each. Load comes from examples/loadgen.rs, an open-loop generator: RATE
# requests per second on LG_CONNS keep-alive connections, on schedule whatever the responses do,
# each request's latency counted from the moment it was due (a stall cannot hide as it can with
# wrk, which stops sending while it waits).
#
#   a. Latency: RATE req/s for PHASE_SECS against the origin directly, nginx, tracing off and
#      tracing on; ROUNDS rounds in rotating order, medians. p50 / p99 / p99.9, p99 added over
#      the origin directly, proxy CPU µs per request, errors; for tracing on, delivery: spans
#      received ÷ (2 × responses), each request making a SERVER and a CLIENT span.
#   b. Memory: tracing on at RATE for STEADY_SECS, VmRSS sampled every RSS_EVERY s: first, last,
#      min, max and (max − min) ÷ first (the target is within ±10 %); delivery.
#   c. Collector failure. First wrk (WRK_SECS, CONNS connections) against tracing on, healthy.
#      Then the span receiver is killed (nothing listens on its port): RATE for 2 × PHASE_SECS
#      (ok req/s ÷ phase b's, RSS before / after / max, errors), then wrk again. Then the
#      receiver is started again on its port and wrk runs once more (healthy again: do spans
#      arrive again?); wrk req/s are compared with the mean of the two healthy runs. Then a
#      second tracing-on instance exports to a black hole (a python3 listener that accepts
#      connections and never reads or answers; exporter timeout BH_TIMEOUT): RATE and wrk again.
#      tracegate's own `stopped: N spans exported, …` line is shown for both instances.
# One summary table at the end. Everything it starts, it stops.
#
# Usage: benches/load/steady.sh     (about 17 minutes with the defaults below)
#        ROUNDS=1 PHASE_SECS=5 STEADY_SECS=30 benches/load/steady.sh     (about 3 minutes)
# Settings: RATE=4000 PHASE_SECS=20 ROUNDS=3 STEADY_SECS=600 RSS_EVERY=10 LG_CONNS=50
#           LG_TIMEOUT=10 (s, one request) WRK_SECS=10 CONNS=50 WORKERS=1 BH_TIMEOUT=2s
set -euo pipefail
cd "$(dirname "$0")/../.."

RATE=${RATE:-4000}
PHASE_SECS=${PHASE_SECS:-20}
ROUNDS=${ROUNDS:-3}
STEADY_SECS=${STEADY_SECS:-600}
RSS_EVERY=${RSS_EVERY:-10}
LG_CONNS=${LG_CONNS:-50}
LG_TIMEOUT=${LG_TIMEOUT:-10}
WRK_SECS=${WRK_SECS:-10}
CONNS=${CONNS:-50}
WORKERS=${WORKERS:-1}
BH_TIMEOUT=${BH_TIMEOUT:-2s}

LOAD_TAG=steady
source benches/load/lib.sh
load_init steady

load_tools wrk:wrk nginx:nginx python3:python3

log "building tracegate, the span sink and the load generator (release)"
cargo build --release --locked --bin tracegate --example otlp_sink --example loadgen 2>&1 | tail -1 >&2
LOADGEN=target/release/examples/loadgen

# --- origin, nginx proxy, span sink and tracegate -------------------------------------------------
start_targets

# --- measuring -----------------------------------------------------------------------------------
RESULTS="$WORK/results.txt" # one record per line: key=value ...
: > "$RESULTS"
record() { echo "$*" >> "$RESULTS"; }

loadgen() { # port seconds -> the generator's result line (key=value ...)
  "$LOADGEN" --url "http://127.0.0.1:$1/" --rate "$RATE" --duration "$2" \
    --connections "$LG_CONNS" --timeout "$LG_TIMEOUT" || true
}

rss_sampler_start() { # pid every-seconds file: samples "unix-time KiB" in the background
  ( while :; do echo "$(date +%s.%N) $(rss_kb "$1")"; sleep "$2"; done ) >> "$3" &
  SAMPLER=$!
  PIDS+=("$SAMPLER")
}

rss_sampler_stop() { # pid file: stops the sampler and adds a last sample
  kill "$SAMPLER" 2>/dev/null || true
  wait "$SAMPLER" 2>/dev/null || true
  forget_pid "$SAMPLER"
  echo "$(date +%s.%N) $(rss_kb "$1")" >> "$2"
}

# A fixed-rate run: phase tag target port pid seconds [rss-file rss-every] -> one record.
fixed_run() {
  local phase=$1 tag=$2 target=$3 port=$4 pid=$5 secs=$6 rss=${7:-} every=${8:-} s0=0 s1=0 c0 c1 k0 k1 out
  local count=""; if [ "$target" = on ] && [ "$phase" != c ]; then count=1; fi # spans reach the sink
  if [ -n "$count" ]; then s0=$(spans_settled); fi
  if [ -n "$rss" ]; then rss_sampler_start "$pid" "$every" "$rss"; fi
  c0=$(cpu_ticks "$pid"); k0=$(cpu_ticks "$SINK_PID")
  out=$(loadgen "$port" "$secs")
  c1=$(cpu_ticks "$pid"); k1=$(cpu_ticks "$SINK_PID")
  if [ -n "$rss" ]; then rss_sampler_stop "$pid" "$rss"; fi
  if [ -n "$count" ]; then s1=$(spans_settled); fi
  record "phase=$phase tag=$tag target=$target ticks=$(( c1 - c0 )) sink_ticks=$(( k1 - k0 ))" \
    "spans=$(( s1 - s0 )) rss_file=${rss:--} $out"
  log "$phase $tag $target: $out"
}

# A closed-loop wrk run: tag port pid [count] -> one record; with count, also the spans received.
wrk_run() {
  local tag=$1 port=$2 pid=$3 count=${4:-} out c0 c1 s0=0 s1=0 reqs rps p50 p99 errs
  if [ -n "$count" ]; then s0=$(spans_settled); fi
  c0=$(cpu_ticks "$pid")
  out=$(wrk -t1 -c"$CONNS" -d"${WRK_SECS}s" --latency "http://127.0.0.1:$port/")
  c1=$(cpu_ticks "$pid")
  if [ -n "$count" ]; then s1=$(spans_settled); fi
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(to_us "$(echo "$out" | awk '$1 == "50%" {print $2}')")
  p99=$(to_us "$(echo "$out" | awk '$1 == "99%" {print $2}')")
  errs=$(echo "$out" | awk '/Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} /Non-2xx/ {n += $NF} END {print n + 0}')
  record "phase=w tag=$tag target=on ticks=$(( c1 - c0 )) sent=$reqs ok=$reqs rate=$rps p50_us=$p50 p99_us=$p99" \
    "errors=$errs spans=$(( s1 - s0 )) counted=${count:-0}"
  log "wrk $tag: $rps req/s, errors $errs"
}

log "warming up"
for port in "$ORIGIN_PORT" "$NGINX_PORT" "$OFF_PORT" "$ON_PORT"; do
  wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$port/" >/dev/null
done

# a. latency at a fixed rate ------------------------------------------------------------------------
targets=("direct $ORIGIN_PORT $ORIGIN_PID" "nginx $NGINX_PORT $NGINX_PID" "off $OFF_PORT $OFF_PID" "on $ON_PORT $ON_PID")
for round in $(seq 1 "$ROUNDS"); do
  # Rotate the order each round so no target always runs first or last.
  for i in 0 1 2 3; do
    read -r name port pid <<< "${targets[$(( (i + round - 1) % 4 ))]}"
    fixed_run a "$round" "$name" "$port" "$pid" "$PHASE_SECS"
  done
done

# b. memory over a long run -------------------------------------------------------------------------
log "steady run: tracing on, $RATE req/s for $STEADY_SECS s"
fixed_run b steady on "$ON_PORT" "$ON_PID" "$STEADY_SECS" "$WORK/rss.steady" "$RSS_EVERY"

# c. collector down, then black-holed ---------------------------------------------------------------
FAIL_SECS=$(( PHASE_SECS * 2 ))
wrk_run healthy "$ON_PORT" "$ON_PID" count
log "killing the span receiver"
kill -KILL "$SINK_PID" 2>/dev/null || true
wait "$SINK_PID" 2>/dev/null || true
forget_pid "$SINK_PID"
if (exec 3<>"/dev/tcp/127.0.0.1/$SINK_PORT") 2>/dev/null; then log "port $SINK_PORT still accepts!"; fi
fixed_run c down on "$ON_PORT" "$ON_PID" "$FAIL_SECS" "$WORK/rss.down" 1
wrk_run down "$ON_PORT" "$ON_PID"
# The receiver comes back on the same port: exports must resume, and this second healthy run
# (averaged with the first) keeps the order of the runs from favouring one case.
log "restarting the span receiver"
start_sink "$SINK_PORT" "$WORK/spans.back.count"
wait_port "$SINK_PORT"
wrk_run back "$ON_PORT" "$ON_PID" count

BH_PORT=$(free_port)
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
python3 "$WORK/blackhole.py" "$BH_PORT" &
HOLE_PID=$!
PIDS+=("$HOLE_PID")
read -r BH_PID BH_TG_PORT < <(start_tracegate blackholed \
  "{ protocol: grpc, endpoint: \"http://127.0.0.1:$BH_PORT\", timeout: $BH_TIMEOUT }")
PIDS+=("$BH_PID")
wait_port "$BH_PORT"; wait_port "$BH_TG_PORT"
log "black-holed collector: warming up the second instance"
wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$BH_TG_PORT/" >/dev/null
fixed_run c blackholed on "$BH_TG_PORT" "$BH_PID" "$FAIL_SECS" "$WORK/rss.blackholed" 1
wrk_run blackholed "$BH_TG_PORT" "$BH_PID"

# Each instance's own account, at exit: spans exported, dropped (queue full), lost in failed exports.
log "stopping the tracing-on instances (the black-holed one may wait for its last exports)"
stop_process "$ON_PID" 20
stop_process "$BH_PID" 40
kill -TERM "$HOLE_PID" 2>/dev/null || true
wait "$HOLE_PID" 2>/dev/null || true
forget_pid "$HOLE_PID"
STOPPED_ON=$(grep -o 'stopped: .*' "$WORK/on.err" || echo "no stopped line (see below)")
STOPPED_BH=$(grep -o 'stopped: .*' "$WORK/blackholed.err" || echo "no stopped line (see below)")
# Its warnings about spans; "Fail to proxy: Downstream ConnectionClosed" lines are wrk closing
# its connections with requests in flight when it stops, and are only counted.
for f in on blackholed; do
  closed=$(grep -c 'Downstream ConnectionClosed' "$WORK/$f.err" || true)
  log "tracegate ($f): $(grep -cE 'WARN|ERROR' "$WORK/$f.err" || true) warnings/errors," \
    "$closed of them wrk closing connections; the last about spans:"
  grep -E 'WARN|ERROR' "$WORK/$f.err" | grep -i 'span' | tail -4 >&2 || true
done

python3 - "$RESULTS" "$CLK_TCK" "$RATE" "$ROUNDS" "$PHASE_SECS" "$STEADY_SECS" "$RSS_EVERY" \
  "$LG_CONNS" "$WORKERS" "$WRK_SECS" "$CONNS" "$BH_TIMEOUT" "$STOPPED_ON" "$STOPPED_BH" <<'EOF'
import os, platform, statistics, sys
(path, clk, rate, rounds, phase_secs, steady_secs, rss_every, lg_conns, workers, wrk_secs, conns,
 bh_timeout, stopped_on, stopped_bh) = sys.argv[1:15]
clk = int(clk)

def num(v):
    try:
        return float(v)
    except ValueError:
        return v

recs = [{k: num(v) for k, v in (t.split("=", 1) for t in l.split() if "=" in t)} for l in open(path) if l.strip()]
def get(phase, tag=None, target=None):
    return [r for r in recs if r["phase"] == phase and (tag is None or r["tag"] == tag)
            and (target is None or r["target"] == target)]

def per_req(ticks, r):
    n = r.get("ok", 0) + r.get("non2xx", 0)
    return ticks * 1e6 / clk / n if n else float("nan")

def delivery(rs):
    resp = sum(r.get("ok", 0) + r.get("non2xx", 0) for r in rs)
    return 100.0 * sum(r["spans"] for r in rs) / (2 * resp) if resp else float("nan")

def rss(r):
    f = r.get("rss_file", "-")
    if f == "-" or not os.path.exists(f):
        return None
    v = [int(l.split()[1]) / 1024 for l in open(f) if l.split() and l.split()[1] != "0"]
    return v or None

rows = []  # (phase, target, ok/s, ratio, p50, p99, p999, +p99, cpu, errors, delivery, rss)
def fmt(v, spec):
    return "-" if v is None or (isinstance(v, float) and v != v) else format(v, spec)

names = {"direct": "origin direct", "nginx": "nginx proxy", "off": "tracing off", "on": "tracing on"}
med = {}
for t in ["direct", "nginx", "off", "on"]:
    rs = get("a", target=t)
    if not rs:
        continue
    m = {k: statistics.median(r.get(k, 0) for r in rs) for k in ["rate", "p50_us", "p99_us", "p999_us", "max_us", "lag_p99_us", "cpu_ms", "sent"]}
    m["cpu"] = statistics.median(per_req(r["ticks"], r) for r in rs) if t != "direct" else None
    m["sink"] = statistics.median(per_req(r["sink_ticks"], r) for r in rs)
    m["errors"] = sum(r.get("errors", 0) + r.get("non2xx", 0) for r in rs)
    m["delivery"] = delivery(rs) if t == "on" else None
    med[t] = m
for t, m in med.items():
    add = m["p99_us"] - med["direct"]["p99_us"] if "direct" in med and t != "direct" else None
    rows.append(("a", names[t], m["rate"], None, m["p50_us"], m["p99_us"], m["p999_us"], add,
                 m["cpu"], m["errors"], m["delivery"], None))

steady = get("b")
ref_rate = steady[0]["rate"] if steady else None
rss_notes = []
def fixed_row(phase, label, r, delivered=True):
    v = rss(r)
    add = r["p99_us"] - med["direct"]["p99_us"] if "direct" in med else None
    ratio = r["rate"] / ref_rate if ref_rate else None
    rows.append((phase, label, r["rate"], ratio, r["p50_us"], r["p99_us"], r["p999_us"], add,
                 per_req(r["ticks"], r), r.get("errors", 0) + r.get("non2xx", 0),
                 delivery([r]) if delivered else None,
                 f"{v[0]:.1f}→{v[-1]:.1f} (max {max(v):.1f})" if v else None))
    return v
if steady:
    v = fixed_row("b", f"tracing on, {steady_secs} s", steady[0])
    if v:
        spread = 100 * (max(v) - min(v)) / v[0]
        rss_notes.append(f"b. RSS over {steady_secs} s, every {rss_every} s: first {v[0]:.1f} MiB, last {v[-1]:.1f}, "
                         f"min {min(v):.1f}, max {max(v):.1f}; (max − min) ÷ first = {spread:.1f} % (target ≤ 10 %)")
        step = max(1, -(-len(v) // 16))  # at most 16 samples shown
        shown = v[::step] if (len(v) - 1) % step == 0 else v[::step] + [v[-1]]
        rss_notes.append(f"   RSS MiB, every {float(rss_every) * step:g} s: " + " ".join(f"{x:.1f}" for x in shown))
for tag, label in [("down", "collector down"), ("blackholed", "collector black-holed")]:
    for r in get("c", tag=tag):
        v = fixed_row("c", label, r, delivered=False)
        if v:
            rss_notes.append(f"c. {label}: RSS {v[0]:.1f} MiB before, {v[-1]:.1f} after, max {max(v):.1f} "
                             f"(samples every 1 s)")
wrk = {r["tag"]: r for r in get("w")}
healthy = [wrk[t]["rate"] for t in ("healthy", "back") if t in wrk]
wrk_ref = statistics.mean(healthy) if healthy else None
for tag, label in [("healthy", "wrk: healthy"), ("down", "wrk: collector down"),
                   ("back", "wrk: collector back"), ("blackholed", "wrk: black-holed")]:
    r = wrk.get(tag)
    if r:
        ratio = r["rate"] / wrk_ref if wrk_ref else None
        rows.append(("c", label, r["rate"], ratio, r["p50_us"], r["p99_us"], None, None,
                     r["ticks"] * 1e6 / clk / r["sent"] if r["sent"] else None, r["errors"],
                     delivery([r]) if r.get("counted") else None, None))

cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"\nmachine: {os.cpu_count()} cores, {cpu_model}, {platform.system()} {platform.release()}")
print(f"open loop: {rate} req/s on {lg_conns} keep-alive connections (examples/loadgen); a: {rounds} rotating round(s) "
      f"of {phase_secs} s, medians; c: {2 * int(phase_secs)} s per case, wrk -c{conns} -d{wrk_secs}s; "
      f"proxies with {workers} worker(s)/thread(s); origin nginx return 200\n")
hdr = (f"{'':2} {'target':<22} {'ok req/s':>9} {'÷ref':>5} {'p50 µs':>7} {'p99 µs':>7} {'p99.9 µs':>8} "
       f"{'+p99 µs':>7} {'CPU µs/req':>10} {'errors':>6} {'delivery':>9}  RSS MiB")
print(hdr); print("-" * (len(hdr) + 24))
for ph, label, ok, ratio, p50, p99, p999, add, cpu, errs, dl, rs in rows:
    print(f"{ph:2} {label:<22} {fmt(ok, '9.0f'):>9} {fmt(ratio, '5.2f'):>5} {fmt(p50, '7.0f'):>7} {fmt(p99, '7.0f'):>7} "
          f"{fmt(p999, '8.0f'):>8} {fmt(add, '+7.0f'):>7} {fmt(cpu, '10.1f'):>10} {fmt(errs, '6.0f'):>6} "
          f"{fmt(dl, '8.3f') + ('%' if dl is not None else ''):>9}  {rs or '-'}")
print()
print("+p99: p99 minus the origin's p99 when requested directly (a: medians). ÷ref: ok req/s ÷ phase b's"
      " (fixed rate), or req/s ÷ the mean of the two healthy wrk runs (wrk rows).")
print("delivery: spans received ÷ (2 × responses); for wrk a little above 100 % is requests still in flight"
      " when wrk stops counting.")
if {"on", "off", "nginx", "direct"} <= med.keys():
    on = med["on"]["p99_us"]
    print(f"a. p99 added by tracegate with tracing on: {on - med['direct']['p99_us']:+.0f} µs vs the origin directly, "
          f"{on - med['off']['p99_us']:+.0f} µs vs tracing off, {on - med['nginx']['p99_us']:+.0f} µs vs nginx")
    lg = [r for r in get("a")]
    lg_cpu = statistics.median(r["cpu_ms"] * 1000 / r["sent"] for r in lg if r.get("sent"))
    lag = max(r.get("lag_p99_us", 0) for r in lg)
    print(f"a. span receiver CPU with tracing on: {med['on']['sink']:.1f} µs/req; load generator CPU: {lg_cpu:.1f} µs/req; "
          f"its own send lag (not counted as latency) p99 ≤ {lag:.0f} µs")
for n in rss_notes:
    print(n)
print(f"tracing on at exit:           {stopped_on}")
print(f"black-holed ({bh_timeout} timeout) at exit: {stopped_bh}")
EOF
