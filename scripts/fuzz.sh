#!/usr/bin/env bash
# Fuzzes the bridge's parsers of hostile input with cargo-fuzz (libFuzzer), on stable Rust.
#
#   scripts/fuzz.sh smoke                  replays fuzz/regressions, then fuzzes every target for
#                                          FUZZ_SMOKE_SECS (25) s; fails on any crash, hang or OOM
#   scripts/fuzz.sh long [EXECS] [TARGET…] runs each target to EXECS (10000000) executions and
#                                          writes fuzz/RESULTS.md; fails if anything was found
#   scripts/fuzz.sh cmin [TARGET…]         merges what fuzzing found into the committed corpora,
#                                          minimised (fuzz/corpus/TARGET)
#   scripts/fuzz.sh run TARGET [ARG…]      one target with libFuzzer arguments (e.g. an input to
#                                          replay), under the same limits
#
# Every run: one process, `nice -n 19`, -timeout=1 (s) and -rss_limit_mb=512. See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGETS=(canonical_contact standard_webhooks pipedrive hubspot salesforce tallyfy_response retry_after)
LIMITS=(-timeout=1 -rss_limit_mb=512 -malloc_limit_mb=512 -max_len=16384)
# cargo-fuzz passes nightly-only rustc flags (-Zsanitizer=address among them); this lets a
# stable toolchain accept them. Overflow checks are on: an overflow is a finding too.
export RUSTC_BOOTSTRAP=1
BUILD=(cargo fuzz build --release --debug-assertions --sanitizer "${FUZZ_SANITIZER:-address}")
# ASan's quarantine of freed memory would otherwise count against the 512 MB RSS limit.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=16:detect_leaks=0}"
BIN=fuzz/target/x86_64-unknown-linux-gnu/release
WORK=fuzz/work

step() {
    printf '\n==> %s\n' "$*"
    "$@"
}

ensure_cargo_fuzz() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        step cargo install cargo-fuzz --locked
    fi
}

# The corpus a run grows: a fresh copy of nothing, fuzzed alongside the committed seeds, so a
# run starts from the repository alone.
fresh_corpus() {
    rm -rf "${WORK:?}/corpus/$1"
    mkdir -p "$WORK/corpus/$1" "$WORK/artifacts/$1" "$WORK/logs"
}

fuzz() {
    local target=$1
    shift
    nice -n 19 "$BIN/$target" "${LIMITS[@]}" -artifact_prefix="$WORK/artifacts/$target/" "$@"
}

# Every saved reproducer must now pass: a fixed finding stays fixed.
replay_regressions() {
    local target inputs
    for target in "${TARGETS[@]}"; do
        inputs=(fuzz/regressions/"$target"/*)
        [[ -e ${inputs[0]} ]] || continue
        mkdir -p "$WORK/artifacts/$target"
        step fuzz "$target" -runs=1 "${inputs[@]}"
    done
}

smoke() {
    local secs=${FUZZ_SMOKE_SECS:-25} target
    replay_regressions
    for target in "${TARGETS[@]}"; do
        fresh_corpus "$target"
        step fuzz "$target" -max_total_time="$secs" -print_final_stats=1 \
            "$WORK/corpus/$target" "fuzz/corpus/$target"
    done
}

# The figure after `name:` on the last libFuzzer status line of a log, or "?".
final_figure() {
    grep -E '^#[0-9]+' "$2" | tail -n 1 | grep -oE "$1: [0-9]+[A-Za-z/0-9]*" |
        cut -d' ' -f2 || echo '?'
}

final_stat() {
    grep -E "^stat::$1:" "$2" | grep -oE '[0-9]+$' || echo '?'
}

long() {
    local execs=${1:-10000000}
    shift || true
    local targets=("$@") target log start secs status failed=0 rows=() commit
    # The code fuzzed is the code at the start.
    commit=$(git rev-parse HEAD)
    git diff --quiet HEAD -- src fuzz ':!fuzz/RESULTS.md' Cargo.toml Cargo.lock ||
        commit="$commit (with uncommitted changes)"
    [[ ${#targets[@]} -gt 0 ]] || targets=("${TARGETS[@]}")
    for target in "${targets[@]}"; do
        fresh_corpus "$target"
        log="$WORK/logs/$target.long.log"
        start=$(date +%s)
        status=0
        printf '\n==> %s to %s executions (log: %s)\n' "$target" "$execs" "$log"
        fuzz "$target" -runs="$execs" -print_final_stats=1 \
            "$WORK/corpus/$target" "fuzz/corpus/$target" >"$log" 2>&1 || status=$?
        secs=$(($(date +%s) - start))
        local found=none
        if [[ $status -ne 0 ]]; then
            failed=1
            found="exit $status: $(grep -m1 -oE 'SUMMARY: libFuzzer: [a-z-]+|ERROR: libFuzzer: [a-z-]+' "$log" ||
                echo 'see log'); $(grep -oE 'Test unit written to [^ ]+' "$log" | head -n 1 | awk '{print $NF}')"
        fi
        rows+=("| \`$target\` | $(final_stat number_of_executed_units "$log") | ${secs} s | $(final_stat average_exec_per_sec "$log") | $(final_figure cov "$log") | $(final_figure ft "$log") | $(final_figure corp "$log") | $(final_stat peak_rss_mb "$log") MB | $found | ${FUZZ_SANITIZER:-address} | $commit | $(date -u '+%Y-%m-%d %H:%M') |")
        tail -n 8 "$log"
    done
    write_results "$execs" "$commit" "${targets[@]}" -- "${rows[@]}"
    return $failed
}

# Rewrites fuzz/RESULTS.md with this run's rows and the rows of the targets it did not run
# (each row says when, on which commit and with which sanitizer), under a lock so that runs of
# different targets side by side keep each other's rows.
write_results() {
    local execs=$1 commit=$2 targets=() kept=() line target
    shift 2
    while [[ $1 != -- ]]; do
        targets+=("$1")
        shift
    done
    shift
    exec {lock}>fuzz/.results.lock
    flock "$lock"
    if [[ -f fuzz/RESULTS.md ]]; then
        while IFS= read -r line; do
            target=${line#'| `'}
            target=${target%%'`'*}
            [[ " ${targets[*]} " == *" $target "* ]] || kept+=("$line")
        done < <(grep -E '^\| `[a-z_]+` \| [0-9?]' fuzz/RESULTS.md || true)
    fi
    local all=("${kept[@]}" "$@") ordered=()
    for target in "${TARGETS[@]}"; do
        for line in "${all[@]}"; do
            [[ $line == "| \`$target\` |"* ]] && ordered+=("$line")
        done
    done
    {
        echo '# Fuzzing results'
        echo
        echo "Generated by \`scripts/fuzz.sh long\` (one row per target, from its latest run); do not edit by hand."
        echo
        echo "- toolchain: $(rustc --version), $(cargo fuzz --version), debug assertions on; each row names its sanitizer"
        echo "- limits: \`${LIMITS[*]}\`, one process, \`nice -n 19\`, on $(nproc) cores"
        echo "- corpus: each run starts from the committed \`fuzz/corpus/TARGET\` alone"
        echo
        echo 'Executions, exec/s and peak RSS are libFuzzer'"'"'s final `stat::` lines; cov (edges), ft'
        echo '(features) and corp (units/size) its last status line.'
        echo
        echo '| target | executions | wall time | exec/s | cov | ft | corp | peak RSS | crashes, hangs, OOMs | sanitizer | commit | date (UTC) |'
        echo '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- |'
        printf '%s\n' "${ordered[@]}"
        echo
        echo 'To reproduce one target (from the repository root):'
        echo
        echo '```sh'
        echo "scripts/fuzz.sh long $execs TARGET"
        echo '# which builds and runs:'
        echo "RUSTC_BOOTSTRAP=1 ${BUILD[*]}"
        echo "ASAN_OPTIONS=$ASAN_OPTIONS nice -n 19 $BIN/TARGET ${LIMITS[*]} \\"
        echo "    -artifact_prefix=$WORK/artifacts/TARGET/ -runs=$execs -print_final_stats=1 \\"
        echo "    $WORK/corpus/TARGET fuzz/corpus/TARGET"
        echo '```'
    } >fuzz/RESULTS.md
    flock -u "$lock"
    printf '\n==> wrote fuzz/RESULTS.md\n'
}

cmin() {
    local targets=("$@") target merged
    [[ ${#targets[@]} -gt 0 ]] || targets=("${TARGETS[@]}")
    for target in "${targets[@]}"; do
        merged="$WORK/merged/$target"
        rm -rf "$merged"
        mkdir -p "$merged" "$WORK/corpus/$target" "fuzz/corpus/$target" "$WORK/artifacts/$target"
        # Edges, not hit counts, and a set cover of them: a small corpus with all the coverage.
        step fuzz "$target" -set_cover_merge=1 -use_counters=0 "$merged" \
            "fuzz/corpus/$target" "$WORK/corpus/$target"
        rm -rf "fuzz/corpus/$target"
        mv "$merged" "fuzz/corpus/$target"
        printf '%s: %s inputs, %s\n' "$target" "$(ls "fuzz/corpus/$target" | wc -l)" \
            "$(du -sh "fuzz/corpus/$target" | cut -f1)"
    done
}

mode=${1:-}
shift || true
case $mode in
smoke | long | cmin | run)
    ensure_cargo_fuzz
    step nice -n 19 "${BUILD[@]}"
    ;;
*)
    sed -n '2,13p' "$0" >&2
    exit 2
    ;;
esac
case $mode in
smoke) smoke ;;
long) long "$@" ;;
cmin) cmin "$@" ;;
run)
    target=$1
    shift
    mkdir -p "$WORK/artifacts/$target"
    fuzz "$target" "$@"
    ;;
esac
