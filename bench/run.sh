#!/usr/bin/env bash
# bench/run.sh: durable-ingest throughput as a ratio to an HTTP ceiling, measured in one run.
#
#   bench/run.sh            # from the repository root (or anywhere: it finds the root itself)
#
# What it does (about 3 minutes with the defaults):
#   1. Installs `wrk` and `sqlite3` from Debian's packages if missing (needs root).
#   2. Builds, in release mode, the bridge (`tallyfy-bridge`) and `bench/hello`, a standalone
#      actix-web 4 binary (same features as the bridge) whose only route is GET/POST /hello.
#      Target dir: $CARGO_TARGET_DIR, default /work/scratch/bench-target.
#   3. Starts both with 2 HTTP workers. The bridge gets a fresh SQLite file in a temp dir,
#      synchronous=FULL, Standard Webhooks signature auth, log level warn, delivery disabled
#      (ingest only); start-to-ready is the time from spawn to the first 200 on /health/ready.
#   4. For each connection count (32, 256), 3 interleaved rounds (so a noisy neighbour slows
#      all scenarios alike) of, 6 s each:
#        hello   GET /hello                      (bench/hello.lua)
#        live    GET /health/live on the bridge  (its full middleware stack, no database)
#        ingest  POST /webhooks/contacts         (bench/ingest.lua)
#      req/s = all requests / all time over the rounds; p50/p99 = median over the rounds;
#      ratio = ingest req/s / hello req/s at the same connection count (per-round range shown).
#      Ingest requests are pre-signed right before each round by bench/gen_signed.py (distinct
#      webhook-id and email per request, realistic contact bodies); wrk only replays them.
#      Every response status is checked: 200 for hello/live, 202 for ingest. The run fails if
#      more than 0.1 % of any point's responses are non-2xx.
#   5. Checks durability: `SELECT count(*) FROM outbox` against the 202s wrk saw.
#   6. Records the bridge's peak RSS (VmHWM) and each server's CPU use per point.
#   7. Overwrites BENCHMARKS.md at the repository root with the figures, the machine and the
#      date. Raw wrk outputs stay in the printed results directory.
#
# Only ratios are meaningful: the machine is shared and noisy.
#
# Knobs (environment): BENCH_DURATION (per point, 6s), BENCH_ROUNDS (3), BENCH_CONNECTIONS
# ("32 256"), BENCH_THREADS (wrk threads, 2), BENCH_WORKERS (HTTP workers per server, 2),
# BENCH_EVENTS (events pre-signed per ingest point, 200000),
# BENCH_SKIP_BUILD=1 (use the binaries already in the target dir), CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR="$ROOT/bench"
export BENCH_DIR
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/scratch/bench-target}
DURATION=${BENCH_DURATION:-6s}
ROUNDS=${BENCH_ROUNDS:-3}
CONNECTIONS=${BENCH_CONNECTIONS:-32 256}
THREADS=${BENCH_THREADS:-2}
WORKERS=${BENCH_WORKERS:-2}
EVENTS=${BENCH_EVENTS:-200000}
SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
MAX_BAD_FRACTION=0.001
COMMAND="bench/run.sh"
[[ $# -eq 0 ]] || { echo "usage: bench/run.sh (configure through BENCH_* variables)" >&2; exit 2; }

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# --- 1. tools ------------------------------------------------------------------------------
need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
command -v curl >/dev/null || need_apt+=(curl)
if ((${#need_apt[@]})); then
    log "installing ${need_apt[*]}"
    if ! apt-get install -y "${need_apt[@]}" >/dev/null 2>&1; then
        apt-get update >/dev/null
        apt-get install -y "${need_apt[@]}" >/dev/null
    fi
fi
command -v python3 >/dev/null || die "python3 is required (to pre-sign the webhooks)"

# --- 2. build ------------------------------------------------------------------------------
BRIDGE_BIN="$CARGO_TARGET_DIR/release/tallyfy-bridge"
HELLO_BIN="$CARGO_TARGET_DIR/release/bench-hello"
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries into $CARGO_TARGET_DIR"
    (cd "$ROOT" && cargo build --release --quiet --bin tallyfy-bridge)
    cargo build --release --quiet --manifest-path "$BENCH_DIR/hello/Cargo.toml"
fi
[[ -x $BRIDGE_BIN && -x $HELLO_BIN ]] || die "missing binaries in $CARGO_TARGET_DIR/release"

# --- 3. servers ----------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/tallyfy-bench.XXXXXX)
RESULTS="$WORK/results"
mkdir -p "$RESULTS"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -f "$WORK"/bench.sqlite* "$WORK"/events-*.tsv
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# Waits until URL answers 200; prints the milliseconds since $2 (a now_ms value).
wait_200() {
    local url=$1 since=$2 pid=$3 deadline=$(( $(now_ms) + 30000 ))
    until [[ $(curl -s -o /dev/null -w '%{http_code}' "$url" || true) == 200 ]]; do
        kill -0 "$pid" 2>/dev/null || die "server for $url exited; see $WORK/*.log"
        (( $(now_ms) < deadline )) || die "$url not ready after 30 s"
        sleep 0.005
    done
    echo $(( $(now_ms) - since ))
}

HELLO_PORT=$(free_port)
"$HELLO_BIN" "$HELLO_PORT" "$WORKERS" >"$WORK/hello.log" 2>&1 &
HELLO_PID=$!
PIDS+=("$HELLO_PID")
wait_200 "http://127.0.0.1:$HELLO_PORT/hello" "$(now_ms)" "$HELLO_PID" >/dev/null

BRIDGE_PORT=$(free_port)
start_ms=$(now_ms)
env -u RUST_LOG \
    BRIDGE__HTTP__PORT="$BRIDGE_PORT" \
    BRIDGE__HTTP__WORKERS="$WORKERS" \
    BRIDGE__DATABASE__PATH="$WORK/bench.sqlite" \
    BRIDGE__DATABASE__SYNCHRONOUS=full \
    BRIDGE__INGEST__AUTH__MODE=signature \
    BRIDGE__INGEST__AUTH__SIGNING_SECRET="$SECRET" \
    BRIDGE__DELIVERY__ENABLED=false \
    BRIDGE__LOG__LEVEL=warn \
    "$BRIDGE_BIN" serve >"$WORK/bridge.log" 2>&1 &
BRIDGE_PID=$!
PIDS+=("$BRIDGE_PID")
READY_MS=$(wait_200 "http://127.0.0.1:$BRIDGE_PORT/health/ready" "$start_ms" "$BRIDGE_PID")
log "bridge ready in ${READY_MS} ms (pid $BRIDGE_PID, port $BRIDGE_PORT); hello on $HELLO_PORT"

# --- 4. load -------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# Per "scenario/connections": summed requests, duration and server CPU ticks; per-round values.
declare -A REQS DUR TICKS BAD P50S P99S ROUND_RPS RATIOS
INGEST_202=0
# run_point NAME CONNS ROUND PID URL SCRIPT [SCRIPT ARGS...]
run_point() {
    local name=$1 conns=$2 round=$3 pid=$4 url=$5 script=$6
    shift 6
    local out="$RESULTS/$name-c$conns-r$round.txt" key="$name/$conns" before after line requests duration other codes bad
    before=$(cpu_ticks "$pid")
    local args=(-t "$THREADS" -c "$conns" -d "$DURATION" --latency -s "$script" "$url")
    (($# == 0)) || args+=(-- "$@")
    wrk "${args[@]}" >"$out" 2>&1 || die "wrk failed for $name c$conns; see $out"
    after=$(cpu_ticks "$pid")
    line=$(grep '^BENCH ' "$out") || die "no BENCH line in $out"
    requests=$(field "$line" requests)
    duration=$(field "$line" duration_us)
    other=$(field "$line" other)
    codes=$(field "$line" other_codes)
    # Non-2xx among the unexpected statuses (a 200 "duplicate" from ingest would be 2xx).
    bad=$(tr ',' '\n' <<<"$codes" | awk -F: '$1 !~ /^2/ && $2 != "" {n += $2} END {print n + 0}')
    REQS[$key]=$(( ${REQS[$key]:-0} + requests ))
    DUR[$key]=$(( ${DUR[$key]:-0} + duration ))
    TICKS[$key]=$(( ${TICKS[$key]:-0} + after - before ))
    BAD[$key]=$(( ${BAD[$key]:-0} + bad ))
    P50S[$key]+=" $(field "$line" p50_us)"
    P99S[$key]+=" $(field "$line" p99_us)"
    ROUND_RPS[$key/$round]=$(field "$line" rps)
    log "$(printf '%-6s c%-3s r%s: %8s req/s  p50 %6s us  p99 %7s us  server CPU %s cores  unexpected %s (%s)  non-2xx %s  socket errors r/w/t %s/%s/%s' \
        "$name" "$conns" "$round" "$(field "$line" rps)" "$(field "$line" p50_us)" "$(field "$line" p99_us)" \
        "$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v d="$duration" 'BEGIN {printf "%.2f", t / hz / (d / 1e6)}')" \
        "$other" "$codes" "$bad" "$(field "$line" sock_read)" "$(field "$line" sock_write)" "$(field "$line" sock_timeout)")"
    [[ $(field "$line" wrapped) == 0 ]] || log "  WARNING: the event list wrapped (duplicates sent); raise BENCH_EVENTS"
    if [[ $name == ingest ]]; then INGEST_202=$((INGEST_202 + $(field "$line" expected))); fi
    awk -v b="$bad" -v n="$requests" -v m="$MAX_BAD_FRACTION" 'BEGIN {exit !(n > 0 && b <= n * m)}' \
        || die "$name c$conns r$round: $bad of $requests responses were non-2xx (limit $MAX_BAD_FRACTION)"
}

# Interleaved rounds: a noisy neighbour then slows every scenario a little instead of one a lot.
for conns in $CONNECTIONS; do
    for round in $(seq "$ROUNDS"); do
        events="$WORK/events-c$conns-r$round.tsv"
        python3 "$BENCH_DIR/gen_signed.py" "$events" "$EVENTS" "c${conns}r$round" "$SECRET"
        run_point hello "$conns" "$round" "$HELLO_PID" "http://127.0.0.1:$HELLO_PORT/hello" "$BENCH_DIR/hello.lua"
        run_point live "$conns" "$round" "$BRIDGE_PID" "http://127.0.0.1:$BRIDGE_PORT/health/live" "$BENCH_DIR/hello.lua"
        run_point ingest "$conns" "$round" "$BRIDGE_PID" "http://127.0.0.1:$BRIDGE_PORT/webhooks/contacts" \
            "$BENCH_DIR/ingest.lua" "$events" "$THREADS"
        rm -f "$events"
        RATIOS[$conns]+=" $(awk -v a="${ROUND_RPS[ingest/$conns/$round]}" -v b="${ROUND_RPS[hello/$conns/$round]}" 'BEGIN {printf "%.1f", 100 * a / b}')"
    done
done

# --- 5./6. durability, memory ---------------------------------------------------------------
PEAK_RSS_KB=$(awk '/^VmHWM:/ {print $2}' "/proc/$BRIDGE_PID/status")
sleep 0.5 # let the writer commit what was in flight when wrk stopped
ROWS=$(sqlite3 "$WORK/bench.sqlite" 'SELECT count(*) FROM outbox')
log "outbox rows: $ROWS; 202 responses seen by wrk: $INGEST_202; bridge peak RSS $((PEAK_RSS_KB / 1024)) MiB"
((ROWS >= INGEST_202)) || die "the outbox holds fewer rows ($ROWS) than 202s were sent ($INGEST_202)"
# Rows of one group commit share received_at (one clock read per batch), so rows per distinct
# received_at millisecond approximates the batch size (an over-estimate if two commits share a ms).
declare -A BATCH
for conns in $CONNECTIONS; do
    BATCH[$conns]=$(sqlite3 "$WORK/bench.sqlite" \
        "SELECT printf('%.1f', 1.0 * count(*) / count(DISTINCT received_at)) FROM outbox WHERE event_id LIKE 'msg_c${conns}r%'")
done
kill -TERM "$BRIDGE_PID"
wait "$BRIDGE_PID" || die "the bridge did not stop cleanly; see $WORK/bridge.log"
ROWS_AFTER_STOP=$(sqlite3 "$WORK/bench.sqlite" 'SELECT count(*) FROM outbox')
cp "$WORK/bridge.log" "$WORK/hello.log" "$RESULTS/"

# --- 7. BENCHMARKS.md ----------------------------------------------------------------------
rps() { awk -v n="${REQS[$1]}" -v d="${DUR[$1]}" 'BEGIN {printf "%.0f", n / (d / 1e6)}'; }
cpu() { awk -v t="${TICKS[$1]}" -v hz="$CLK_TCK" -v d="${DUR[$1]}" 'BEGIN {printf "%.2f", t / hz / (d / 1e6)}'; }
ms() { awk -v us="$1" 'BEGIN {printf "%.2f ms", us / 1000}'; }
p50() { ms "$(median <<<"${P50S[$1]}")"; }
p99() { ms "$(median <<<"${P99S[$1]}")"; }
ratio() { awk -v a="$(rps "$1")" -v b="$(rps "$2")" 'BEGIN {printf "%.1f %%", 100 * a / b}'; }
range() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%s–%s %%", lo, hi}'; }
cpu_model=$(sed -n 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1)
{
    echo "# Benchmarks"
    echo
    echo "Generated by \`$COMMAND\` (its header says what it measures and how). This machine is"
    echo "shared and noisy: compare **ratios** measured in the same run, not absolute figures."
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r)"
    echo "- Toolchain: $(rustc --version)"
    echo "- Commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml migrations 2>/dev/null || echo ' plus uncommitted changes')"
    echo "- Command: \`$COMMAND\` — wrk with $THREADS threads; $ROUNDS interleaved rounds of $DURATION per scenario and connection count; $WORKERS HTTP workers per server; wrk and the servers share the same $(nproc) CPUs."
    echo
    echo "## HTTP ceiling and durable ingest"
    echo
    echo "req/s over all rounds; p50/p99: median of the rounds; ratio: to hello at the same connection count (per-round range in brackets); server CPU: cores used by the server process."
    echo
    echo "| scenario | connections | req/s | p50 | p99 | ratio to hello | server CPU |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for conns in $CONNECTIONS; do
        h="hello/$conns" l="live/$conns" i="ingest/$conns"
        echo "| hello (\`GET /hello\`, bench/hello) | $conns | $(rps "$h") | $(p50 "$h") | $(p99 "$h") | 100 % | $(cpu "$h") |"
        echo "| bridge \`GET /health/live\` (its middleware, no DB) | $conns | $(rps "$l") | $(p50 "$l") | $(p99 "$l") | $(ratio "$l" "$h") | $(cpu "$l") |"
        echo "| **durable ingest** (\`POST /webhooks/contacts\`) | $conns | $(rps "$i") | $(p50 "$i") | $(p99 "$i") | **$(ratio "$i" "$h")** ($(range "${RATIOS[$conns]}")) | $(cpu "$i") |"
    done
    echo
    echo "Targets (issue 6): durable ingest ≥ 20 % of hello at 32 connections and ≥ 30 % at 256; p99 ≤ 10 ms at 32."
    echo
    echo "## Checks, memory and start-up"
    echo
    echo "- Non-2xx responses: $(for c in $CONNECTIONS; do printf 'hello/%s %s, live/%s %s, ingest/%s %s; ' "$c" "${BAD[hello/$c]}" "$c" "${BAD[live/$c]}" "$c" "${BAD[ingest/$c]}"; done | sed 's/; $//') (the run fails above 0.1 %)."
    echo "- Durability: wrk saw $INGEST_202 × 202; \`SELECT count(*) FROM outbox\` = $ROWS after the load and $ROWS_AFTER_STOP after SIGTERM (rows beyond the 202s are requests in flight when wrk stopped: committed, answer unread)."
    echo "- Group commit, approximate rows per commit: $(for c in $CONNECTIONS; do printf '%s at %s connections; ' "${BATCH[$c]}" "$c"; done | sed 's/; $//')."
    echo "- Bridge peak RSS (VmHWM over the whole run, ingest load included): $((PEAK_RSS_KB / 1024)) MiB ($PEAK_RSS_KB kB); target ≤ 64 MB."
    echo "- Start to ready (spawn → first 200 on \`/health/ready\`, fresh database, migrations included, polled every ~5–10 ms): $READY_MS ms."
    echo
    echo "Ingest events are pre-signed by \`bench/gen_signed.py\` just before each round (Standard Webhooks"
    echo "v1, distinct \`webhook-id\` and email per request, ~330-byte contact bodies) and replayed by"
    echo "\`bench/ingest.lua\`. Bridge settings: \`database.synchronous=full\`, signature auth, \`log.level=warn\`,"
    echo "\`delivery.enabled=false\` (ingest only), the rest at their defaults (\`ingest.max_batch\` 512,"
    echo "\`ingest.queue_capacity\` 8192)."
} >"$ROOT/BENCHMARKS.md"
log "wrote $ROOT/BENCHMARKS.md; raw wrk outputs in $RESULTS"
