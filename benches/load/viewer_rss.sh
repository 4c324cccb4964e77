#!/usr/bin/env bash
# Memory of the trace viewer's store: does it stay within admin.traces.max_bytes?
#
# Starts, all on 127.0.0.1:
#   - an origin: nginx answering `return 200` (1 worker);
#   - one tracegate with tracing on (100 % sampled) and no exporter (`{ protocol: none }`: the
#     viewer's store is a sink of its own, so only the store holds spans), with
#     `admin: { traces: {}, otlp_intake: true }`: the store with its default limits (1000
#     traces, 64 MiB) and the OTLP/HTTP intake;
# then records the proxy's RSS and the store's own numbers (`GET /traces/summary`: stored
# traces, spans and bytes):
#   1. at rest;
#   2. after REQUESTS requests through the proxy (wrk, stopped by a Lua script at that many
#      answers; the count shown is the proxy's own, from /metrics);
#   3. after an intake flood: OTLP/JSON spans POSTed to /v1/traces (keep-alive, SPANS_PER_POST
#      spans a request, SPANS_PER_TRACE spans a trace, every trace id new, each span with
#      ATTRIBUTES string attributes of BLOB_BYTES) until FLOOD_MIB MiB of bodies have been sent:
#      far more than the store may hold, so it has to evict by bytes;
# and prints one table, then checks stored bytes ≤ max_bytes and compares the RSS after the
# flood with max_bytes + the RSS at rest (above 1.5× of it, the store's byte estimate is far
# from what it really holds). Everything it starts, it stops. Takes about a minute.
#
# Usage: benches/load/viewer_rss.sh   (REQUESTS=100000 FLOOD_MIB=200 SPANS_PER_POST=200
#        SPANS_PER_TRACE=20 ATTRIBUTES=1 BLOB_BYTES=4096 CONNS=50 WORKERS=1 by default)
#        BLOB_BYTES over 4096 (the intake keeps 4096 bytes of a value) or many small ATTRIBUTES
#        show how far the store's byte estimate is from what the spans really take
set -euo pipefail
cd "$(dirname "$0")/../.."

REQUESTS=${REQUESTS:-100000}
FLOOD_MIB=${FLOOD_MIB:-200}
SPANS_PER_POST=${SPANS_PER_POST:-200}
SPANS_PER_TRACE=${SPANS_PER_TRACE:-20}
ATTRIBUTES=${ATTRIBUTES:-1}
BLOB_BYTES=${BLOB_BYTES:-4096}
CONNS=${CONNS:-50}
WORKERS=${WORKERS:-1}

LOAD_TAG=viewer-rss
source benches/load/lib.sh
load_init viewer-rss

load_tools wrk:wrk nginx:nginx python3:python3 curl:curl

log "building tracegate (release)"
cargo build --release --locked --bin tracegate 2>&1 | tail -1 >&2

# --- origin and tracegate with the viewer --------------------------------------------------------
start_origin
ADMIN_PORT=$(free_port)
read -r TG_PID TG_PORT < <(start_tracegate viewer "{ protocol: none }" "\
admin: { listen: \"127.0.0.1:$ADMIN_PORT\", traces: {}, otlp_intake: true }")
PIDS+=("$TG_PID")
for p in "$ORIGIN_PORT" "$TG_PORT" "$ADMIN_PORT"; do wait_port "$p"; done
ADMIN="http://127.0.0.1:$ADMIN_PORT"

# --- measuring -----------------------------------------------------------------------------------
RESULTS="$WORK/results.tsv"
: > "$RESULTS"

proxied() { # requests the proxy has answered, from its own request-duration histogram
  curl -s "$ADMIN/metrics" | awk '/^http_server_request_duration_seconds_count/ {n += $NF} END {print n + 0}'
}

record() { # phase, what was sent: one row of the table, with the store's numbers and the RSS
  sleep 1  # the exporter thread records a batch after the batch delay
  local stored
  stored=$(curl -s "$ADMIN/traces/summary?limit=1" | python3 -c '
import json, sys
s = json.load(sys.stdin)["stored"]
print("\t".join(str(s[k]) for k in ("traces", "spans", "bytes", "max_bytes", "evicted", "dropped_spans")))')
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$stored" "$(rss_kb "$TG_PID")" >> "$RESULTS"
  log "$1: $(tail -1 "$RESULTS")"
}

record "at rest" "-"

log "sending $REQUESTS requests through the proxy"
cat > "$WORK/count.lua" <<EOF
-- Stops sending after $REQUESTS answers (one thread; connections still waiting finish theirs).
local answers = 0
response = function(status, headers, body)
  answers = answers + 1
  if answers >= $REQUESTS then wrk.thread:stop() end
end
EOF
# wrk's main thread sleeps for the whole -d even when the Lua script stops its thread: it is
# interrupted (SIGINT: it prints its figures and exits) once the proxy counts REQUESTS.
wrk -t1 -c"$CONNS" -d600s -s "$WORK/count.lua" "http://127.0.0.1:$TG_PORT/" > "$WORK/wrk.out" &
WRK_PID=$!
PIDS+=("$WRK_PID")
while [ "$(proxied)" -lt "$REQUESTS" ] && alive "$WRK_PID"; do sleep 0.2; done
kill -INT "$WRK_PID" 2>/dev/null || true
wait "$WRK_PID" || true
forget_pid "$WRK_PID"
# Top up if wrk stopped short (it should not): until the proxy itself counts REQUESTS.
while [ "$(proxied)" -lt "$REQUESTS" ]; do
  wrk -t1 -c1 -d1s "http://127.0.0.1:$TG_PORT/" >/dev/null
done
if grep -q "Non-2xx\|Socket errors" "$WORK/wrk.out"; then log "wrk saw errors:"; cat "$WORK/wrk.out" >&2; fi
record "after requests" "$(proxied) requests"

log "flooding the OTLP intake with ${FLOOD_MIB} MiB of OTLP/JSON spans"
flood=$(python3 - "$ADMIN_PORT" "$FLOOD_MIB" "$SPANS_PER_POST" "$SPANS_PER_TRACE" "$BLOB_BYTES" "$ATTRIBUTES" <<'EOF'
import http.client, json, sys
port, mib, per_post, per_trace, blob_bytes, n_attrs = map(int, sys.argv[1:7])
blob = ("0123456789abcdef" * (blob_bytes // 16 + 1))[:blob_bytes]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
sent = spans = posts = rejected = 0
span_no = 0
while sent < mib << 20:
    batch = []
    for _ in range(per_post):
        span_no += 1
        trace_no = (span_no - 1) // per_trace + 1
        batch.append({"traceId": f"f1{trace_no:030x}", "spanId": f"{span_no:016x}", "name": "x",
                      "kind": 2, "startTimeUnixNano": "1", "endTimeUnixNano": "2",
                      "attributes": [{"key": f"blob{i}" if i else "blob", "value": {"stringValue": blob}}
                                     for i in range(n_attrs)]})
    body = json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "flood"}}]},
        "scopeSpans": [{"spans": batch}]}]}).encode()
    conn.request("POST", "/v1/traces", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    answer = r.read()
    if r.status != 200:
        sys.exit(f"POST /v1/traces: {r.status} {answer[:200]!r}")
    # OTLP partial success: the spans the receiver rejected, if any.
    rejected += int(json.loads(answer or b"{}").get("partialSuccess", {}).get("rejectedSpans", 0) or 0)
    sent += len(body); spans += per_post; posts += 1
conn.close()
print(spans, posts, sent, rejected)
EOF
)
read -r FLOOD_SPANS FLOOD_POSTS FLOOD_BYTES FLOOD_REJECTED <<< "$flood"
record "after intake flood" "$FLOOD_SPANS spans"
HWM_KB=$(awk '/^VmHWM:/ {print $2}' "/proc/$TG_PID/status")

stop_process "$TG_PID" 10
stopped=$(grep -o 'stopped: .*' "$WORK/viewer.err" || true)
errors=$(grep -v 'stopped: ' "$WORK/viewer.err" | tail -5 || true)

python3 - "$RESULTS" "$FLOOD_POSTS" "$FLOOD_BYTES" "$FLOOD_REJECTED" "$HWM_KB" "$SPANS_PER_POST" \
  "$SPANS_PER_TRACE" "$BLOB_BYTES" "$ATTRIBUTES" "$stopped" "$errors" <<'EOF'
import sys
path, posts, sent, rejected, hwm, per_post, per_trace, blob, attrs, stopped, errors = sys.argv[1:12]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
mib = lambda b: int(b) / 1048576
print(f"\ntracegate, tracing on (exporter none), admin.traces default limits, OTLP intake on")
hdr = f"{'phase':<20} {'requests/spans sent':>22} {'stored traces':>13} {'stored spans':>12} {'stored bytes':>14} {'RSS MiB':>8}"
print(hdr); print("-" * len(hdr))
for phase, what, traces, spans, stored, max_bytes, evicted, dropped, rss in rows:
    print(f"{phase:<20} {what:>22} {traces:>13} {spans:>12} {stored:>14} {int(rss) / 1024:>8.1f}")
rest, flood = rows[0], rows[-1]
max_bytes = int(flood[5])
print(f"\nflood: {posts} POSTs of {per_post} spans ({per_trace} a trace, {attrs} attribute(s) of {blob} bytes each), "
      f"{mib(sent):.1f} MiB of OTLP/JSON, {rejected} spans rejected; store evicted {flood[6]} traces, "
      f"dropped {flood[7]} spans")
ok = int(flood[4]) <= max_bytes
print(f"stored bytes after the flood: {int(flood[4])} {'≤' if ok else '>'} max_bytes {max_bytes} "
      f"({mib(flood[4]):.1f} of {mib(max_bytes):.0f} MiB): {'ok' if ok else 'OVER THE LIMIT'}")
bound = max_bytes + int(rest[8]) * 1024
ratio = int(flood[8]) * 1024 / bound
print(f"RSS after the flood {mib(int(flood[8]) * 1024):.1f} MiB ÷ (max_bytes + RSS at rest = {mib(bound):.1f} MiB): "
      f"{ratio:.2f}{'  — FAR ABOVE what the store may hold (> 1.5×)' if ratio > 1.5 else ''}")
print(f"peak RSS (VmHWM): {int(hwm) / 1024:.1f} MiB")
if stopped:
    print(f"at exit: {stopped}")
if errors.strip():
    print("stderr (last lines):\n" + errors)
EOF
