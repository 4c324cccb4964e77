#!/usr/bin/env bash
# Fuzzing campaign: builds the libFuzzer targets of fuzz/ (cargo-fuzz, nightly toolchain, debug
# assertions and overflow checks on; AddressSanitizer for the config target, whose YAML parser is
# unsafe code translated from C, none for the others, which are safe Rust and run several times
# faster without it) and runs each for RUNS executions,
# one target at a time, at nice 19. Each target asserts that its parser never panics, plus an
# invariant of its own (see the `//!` doc of each file in fuzz_targets/).
#
# Before the config campaign, the config target is run once on each "limits" input, generated
# here: billion-laughs alias bombs, an alias fan-out, 10 MB files (many routes, one long scalar,
# deep nesting, many keys, many anchors), a certificate path that never ends (/dev/zero); each
# must finish within LIMIT_TIMEOUT seconds and LIMIT_RSS_MB (LIMITS_CHECK=0 skips this).
#
# Prints one line per target: executions, seconds, executions per second, peak RSS, crashes
# (libFuzzer stops at the first crash, timeout or out-of-memory and writes the input to
# fuzz/artifacts/TARGET/; with TMIN=1 it is then minimised next to it). Exit status 1 when
# anything crashed or a limits input failed.
#
# Usage: fuzz/run.sh                  every target, RUNS=10000000 each
#        RUNS=100000 fuzz/run.sh w3c b3
# Settings: RUNS=10000000, CONFIG_RUNS=$RUNS, MAX_TIME=1500 (s per target, then it stops early
#           and says how many executions it did), TIMEOUT=10 (s per input), RSS_MB=2048,
#           CONFIG_MAX_LEN=16384 (bytes), MAX_LEN (bytes; by default 512 to 16384 by format),
#           LIMIT_TIMEOUT=60, LIMIT_RSS_MB=1024,
#           SANITIZER=none (the parser targets; or address), CONFIG_SANITIZER=address, TMIN=1,
#           LIMITS_CHECK=1, JOBS_NICE=19
# Needs: rustup's nightly toolchain, cargo-fuzz (installed from crates.io when missing), a C++
# compiler (g++), python3. Runs the targets in a network namespace of their own (`unshare -n`)
# when it can: config loading resolves backend host names.
set -euo pipefail

# All in one function, read whole before it runs: editing this file during a campaign is safe.
main() {
cd "$(dirname "$0")"

RUNS=${RUNS:-10000000}
CONFIG_RUNS=${CONFIG_RUNS:-$RUNS}
MAX_TIME=${MAX_TIME:-1500}
TIMEOUT=${TIMEOUT:-10}
RSS_MB=${RSS_MB:-2048}
CONFIG_MAX_LEN=${CONFIG_MAX_LEN:-16384}
LIMIT_TIMEOUT=${LIMIT_TIMEOUT:-60}
LIMIT_RSS_MB=${LIMIT_RSS_MB:-1024}
SANITIZER=${SANITIZER:-none}
CONFIG_SANITIZER=${CONFIG_SANITIZER:-address}
TMIN=${TMIN:-1}
LIMITS_CHECK=${LIMITS_CHECK:-1}
JOBS_NICE=${JOBS_NICE:-19}

ALL=(w3c b3 jaeger baggage extract forwarded header_edits config)
FEATURES=()
if [ -f ../src/routing/path.rs ]; then
  ALL+=(path)
  FEATURES=(--features path)
fi
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")

log() { echo "[fuzz] $*" >&2; }

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done; rm -rf "${LIMITS:-}"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- toolchain ---------------------------------------------------------------------------------
if ! cargo +nightly --version >/dev/null 2>&1; then
  log "the nightly toolchain is missing: rustup toolchain install nightly"; exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
command -v c++ >/dev/null || { log "libfuzzer-sys needs a C++ compiler (apt-get install g++)"; exit 2; }

# One build per sanitizer, each in a target directory of its own (switching would rebuild all).
bin_dir() { # sanitizer -> the directory of its binaries
  if [ "$1" = address ]; then echo target/x86_64-unknown-linux-gnu/release
  else echo "target/san-$1/x86_64-unknown-linux-gnu/release"; fi
}
sanitizer_of() { if [ "$1" = config ]; then echo "$CONFIG_SANITIZER"; else echo "$SANITIZER"; fi; }
for san in $(for t in "${TARGETS[@]}"; do sanitizer_of "$t"; done | sort -u); do
  dir=(); [ "$san" = address ] || dir=(--target-dir "target/san-$san")
  log "building the targets with sanitizer $san"
  nice -n "$JOBS_NICE" cargo +nightly fuzz build --sanitizer "$san" "${dir[@]}" "${FEATURES[@]}" 2>&1 | tail -1 >&2
done

ISOLATE=()
if unshare -n true 2>/dev/null; then ISOLATE=(unshare -n)
elif unshare -rn true 2>/dev/null; then ISOLATE=(unshare -rn)
else log "no network namespace (unshare -n): backend names in fuzzed configs are looked up for real"; fi

# --- limits: the config target once on each generated input ---------------------------------------
LIMITS_FAILED=0
run_limits() {
  LIMITS=$(mktemp -d /tmp/tracegate-fuzz-limits.XXXXXX)
  python3 - "$LIMITS" <<'EOF'
import sys
d = sys.argv[1]
MB10 = 10 * 1024 * 1024
def w(name, text):
    open(f"{d}/{name}", "w").write(text)
head = 'listen: ["127.0.0.1:0"]\n'
# Nine levels of nine aliases (9^9 strings), where serde buffers a whole value (untagged enums).
def laughs(prefix, item):
    out, prev = [prefix + item.format(a="a", v='["lol","lol","lol","lol","lol","lol","lol","lol","lol"]')], "a"
    for c in "bcdefghi":
        out.append(prefix + item.format(a=c, v="[" + ",".join([f"*{prev}"] * 9) + "]"))
        prev = c
    return "\n".join(out) + "\n"
w("billion_laughs_trusted.yaml", head + "forwarded:\n  trusted:\n" + laughs("    - ", "&{a} {v}"))
w("billion_laughs_header_values.yaml", head + "routes:\n  - name: r\n    respond: { status: 200 }\n"
  "    response_headers:\n      add:\n" + laughs("        ", "x-{a}: &{a} {v}"))
# Fan-out: one list of N strings, aliased by M routes (N x M strings for a 64 KiB file): each
# alias is one jump for the parser's repetition limit, whatever the size of what it repeats.
n, m = 10000, 8000
w("alias_fanout_64k.yaml", head + "telemetry:\n  propagators: &l [" + ",".join(["b3"] * n) + "]\n"
  "routes: [&r { name: r, match: { methods: *l }, respond: { status: 200 } }, " + ",".join(["*r"] * m) + "]\n")
n, m = 3000, 2000
w("alias_fanout_16k.yaml", head + "telemetry:\n  propagators: &l [" + ",".join(["b3"] * n) + "]\n"
  "routes: [&r { name: r, match: { methods: *l }, respond: { status: 200 } }, " + ",".join(["*r"] * m) + "]\n")
# 10 MB files.
routes, i, size = [], 0, len(head) + 8
while size < MB10:
    r = f"  - {{ name: r{i}, match: {{ path_prefix: /p{i}/ }}, respond: {{ status: 200, body: ok }} }}\n"
    routes.append(r); size += len(r); i += 1
w("routes_10mb.yaml", head + "routes:\n" + "".join(routes))
w("scalar_10mb.yaml", head + "telemetry:\n  service_name: " + "x" * MB10 + "\n")
depth = MB10 // 2
w("nesting_10mb.yaml", head + "forwarded: { trusted: " + "[" * depth + "]" * depth + " }\n")
keys, i, size = [], 0, 0
while size < MB10:
    k = f"    k{i}: v{i}\n"; keys.append(k); size += len(k); i += 1
w("resource_keys_10mb.yaml", head + "telemetry:\n  resource:\n" + "".join(keys))
# A certificate "file" that never ends.
w("cert_dev_zero.yaml", 'listen: [{ addr: "127.0.0.1:0", tls: { certificates: [{ cert_file: /dev/zero, key_file: /dev/zero }] } }]\n')
w("anchors_10mb.yaml", head + "routes:\n" + "".join(
    f"  - &a{i} {{ name: a{i}, respond: {{ status: 200 }} }}\n" for i in range(MB10 // 48)))
EOF
  printf '\n%-36s %8s %10s %10s  %s\n' "limits input (config target)" "KiB" "seconds" "peak MiB" "result" > "$LIMITS/table"
  for f in "$LIMITS"/*.yaml; do
    name=$(basename "$f")
    start=$(date +%s.%N)
    set +e
    out=$(nice -n "$JOBS_NICE" "${ISOLATE[@]}" python3 -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], "wb"), stderr=subprocess.STDOUT)
print(f"RC={r.returncode} MAXRSS_KB={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
' "$LIMITS/$name.log" "$(bin_dir "$CONFIG_SANITIZER")/config" -timeout="$LIMIT_TIMEOUT" -rss_limit_mb="$LIMIT_RSS_MB" \
      -malloc_limit_mb="$LIMIT_RSS_MB" -artifact_prefix="$LIMITS/$name." "$f" 2>&1)
    set -e
    flog="$LIMITS/$name.log"
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    rc=$(echo "$out" | sed -n 's/^RC=\(-\{0,1\}[0-9]*\).*/\1/p' | tail -1)
    rss=$(echo "$out" | sed -n 's/.*MAXRSS_KB=\([0-9]*\).*/\1/p' | tail -1)
    if [ "$rc" = 0 ]; then result=ok
    elif grep -q 'libFuzzer: timeout' "$flog"; then result="TIMEOUT (> ${LIMIT_TIMEOUT}s)"
    elif grep -q 'out-of-memory' "$flog"; then
      result="OUT OF MEMORY ($(grep -m1 -o 'out-of-memory ([^;)]*[;)][^)]*)' "$flog" || echo "> $LIMIT_RSS_MB MB"))"
    else result="CRASH: $(grep -m1 -E 'panicked|ERROR' "$flog" || echo "exit $rc")"; fi
    if [ "$result" != ok ]; then
      LIMITS_FAILED=$(( LIMITS_FAILED + 1 ))
      mkdir -p artifacts/config && cp "$f" "artifacts/config/limits-$name" && cp "$flog" "artifacts/config/limits-$name.log"
      result="$result; kept as fuzz/artifacts/config/limits-$name"
    fi
    printf '%-36s %8d %10s %10d  %s\n' "$name" "$(( $(stat -c %s "$f") / 1024 ))" "$secs" "$(( ${rss:-0} / 1024 ))" "$result" >> "$LIMITS/table"
    log "limits $name: $result in ${secs}s"
  done
  LIMITS_TABLE=$(cat "$LIMITS/table")
}

# --- campaigns -----------------------------------------------------------------------------------
TABLE=$(printf '%-14s %12s %9s %10s %9s %8s  %s' target executions seconds "exec/s" "peak MiB" crashes note)
CRASHED=0
for t in "${TARGETS[@]}"; do
  BIN=$(bin_dir "$(sanitizer_of "$t")")
  if [ ! -x "$BIN/$t" ]; then log "no binary for $t"; exit 2; fi
  if [ "$t" = config ] && [ "$LIMITS_CHECK" = 1 ]; then run_limits; fi
  mkdir -p "corpus/$t" "artifacts/$t"
  dirs=("corpus/$t")
  [ -d "seeds/$t" ] && dirs+=("seeds/$t")
  runs=$RUNS
  case $t in # inputs long enough for every limit of the format, and no longer
    b3 | jaeger) max_len=${MAX_LEN:-512} ;;
    w3c | forwarded | header_edits | path) max_len=${MAX_LEN:-2048} ;;
    extract) max_len=${MAX_LEN:-4096} ;;
    baggage) max_len=${MAX_LEN:-16384} ;; # past the 8192-byte limit
    config) dirs+=(../config); runs=$CONFIG_RUNS max_len=$CONFIG_MAX_LEN ;;
    *) max_len=${MAX_LEN:-4096} ;;
  esac
  dict=(); [ -f "dict/$t.dict" ] && dict=(-dict="dict/$t.dict")
  log "$t: $runs executions (at most ${MAX_TIME}s)"
  logf="artifacts/$t/last-run.log"
  start=$(date +%s.%N)
  set +e
  nice -n "$JOBS_NICE" "${ISOLATE[@]}" "$BIN/$t" -runs="$runs" -max_total_time="$MAX_TIME" \
    -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" -max_len="$max_len" "${dict[@]}" \
    -print_final_stats=1 -artifact_prefix="artifacts/$t/" "${dirs[@]}" > "$logf" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait "$pid"; rc=$?
  set -e
  PIDS=()
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$logf" | tail -1)
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$logf" | tail -1 | tr -d '#' || true)
  rss=$(sed -n 's/^stat::peak_rss_mb: *\([0-9]*\)/\1/p' "$logf" | tail -1)
  artifact=$(sed -n 's/.*Test unit written to \(\S*\).*/\1/p' "$logf" | tail -1)
  crashes=0 note=""
  if [ -n "$artifact" ] || [ "$rc" -ne 0 ]; then
    crashes=1 CRASHED=$(( CRASHED + 1 ))
    kind=$(grep -m1 -oE 'panicked at [^:]*:[0-9]+|libFuzzer: (timeout|out-of-memory)[^)]*\)?|ERROR: AddressSanitizer: [a-z-]+|deadly signal' "$logf" || echo "exit $rc")
    note="$kind; input: fuzz/${artifact:-?}"
    if [ "$TMIN" = 1 ] && [ -n "$artifact" ]; then
      log "$t: minimising $artifact"
      nice -n "$JOBS_NICE" "${ISOLATE[@]}" "$BIN/$t" -minimize_crash=1 -runs=20000 -timeout="$TIMEOUT" \
        -rss_limit_mb="$RSS_MB" -exact_artifact_path="$artifact.min" "$artifact" > "artifacts/$t/tmin.log" 2>&1 || true
      [ -f "$artifact.min" ] && note="$note (minimised: fuzz/$artifact.min, $(stat -c %s "$artifact.min") bytes)"
    fi
  elif [ "${execs:-0}" -lt "$runs" ]; then
    note="stopped by MAX_TIME=${MAX_TIME}s"
  fi
  rate=$(awk -v n="${execs:-0}" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
  line=$(printf '%-14s %12s %9s %10s %9s %8s  %s' "$t" "${execs:-?}" "$secs" "$rate" "${rss:-?}" "$crashes" "$note")
  TABLE="$TABLE"$'\n'"$line"
  log "$line"
done

echo "${LIMITS_TABLE:-}"
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ) $(git -C .. rev-parse --short HEAD 2>/dev/null || true), sanitizer $SANITIZER (config: $CONFIG_SANITIZER), nice $JOBS_NICE, $(nproc) cores"
echo "$TABLE"
if (( CRASHED > 0 || LIMITS_FAILED > 0 )); then exit 1; fi
}

main "$@"
