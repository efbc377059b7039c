#!/usr/bin/env bash
# Builds the libFuzzer targets (test/fuzz, clang) and runs each for N seconds,
# as many at a time as there are cores, on a copy of its seed corpus in a
# temporary directory (the fuzzer adds files to its corpus; the repository's
# stays as committed).
#
#   scripts/fuzz.sh [--seconds N] [--build DIR] [--keep] [target...]
#
# Defaults: 60 s per target, build/fuzz, every target. --keep leaves the
# work directory (grown corpora, logs) in place. Exits non-zero when a target
# crashes (ASan, UBSan, a differential mismatch, a timeout, too much memory),
# after printing the reproducer and the command that re-runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
build=build/fuzz
keep=0
targets=()
while (($#)); do
    case "$1" in
    --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
    --build) build=${2:?--build needs a value}; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
    esac
done
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --seconds: '$seconds' is not a positive integer" >&2; exit 2; }

# Per target: the largest input (bytes). A netconf carries prevResult and an
# escaped policy annotation, so it gets more room; a policy of 4 KB already
# compiles to thousands of entries.
declare -A max_len=([fuzz_cni_stdin]=8192 [fuzz_policy]=4096 [fuzz_update_input]=4096)
# The update input is the annotation's JSON: one dictionary for both.
declare -A dict=([fuzz_cni_stdin]=fuzz_cni_stdin [fuzz_policy]=fuzz_policy [fuzz_update_input]=fuzz_policy)
all=(fuzz_cni_stdin fuzz_policy fuzz_update_input)
((${#targets[@]})) || targets=("${all[@]}")
for t in "${targets[@]}"; do
    [[ -n ${max_len[$t]:-} ]] || { echo "fuzz.sh: unknown target $t (known: ${all[*]})" >&2; exit 2; }
done

# CI has 2 cores: build with 2 jobs.
CC=clang CXX=clang++ cmake -S . -B "$build" -DPODFENCE_FUZZ=ON -DPODFENCE_WERROR=ON >/dev/null
cmake --build "$build" -j2 --target "${targets[@]}"

work=$(mktemp -d /tmp/podfence-fuzz.XXXXXX)
trap '((keep)) || rm -rf "$work"' EXIT

# One target: its summary line in $work/<target>/line, and $work/<target>/failed
# when it crashed.
run_target() {
    local t=$1 bin corpus artifacts log opts start rc wall_ms runs done_line line repro
    bin=$(realpath "$build/test/fuzz/$t")
    corpus=$work/$t/corpus
    artifacts=$work/$t/artifacts/
    log=$work/$t/log
    mkdir -p "$corpus" "$artifacts"
    cp -r test/fuzz/corpus/"$t"/. "$corpus"/
    # -timeout: a hang, not a slow input (those stay far below 100 ms).
    opts=(-max_total_time="$seconds" -max_len="${max_len[$t]}" -timeout=5 -rss_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$artifacts")
    opts+=(-dict="$(realpath "test/fuzz/${dict[$t]}.dict")")
    echo "== $t: ${seconds}s, -max_len=${max_len[$t]}"
    start=$(date +%s%N)
    rc=0
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} "$bin" "${opts[@]}" "$corpus" >"$log" 2>&1 || rc=$?
    wall_ms=$((($(date +%s%N) - start) / 1000000))
    # libFuzzer's own figures: -print_final_stats=1, and its "Done N runs in S second(s)".
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 || true)
    [[ -n $runs ]] || runs=$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' <<<"$done_line")
    line=$(printf '%-18s executions %-10s wall %d.%03d s  (%s)  corpus %s files' "$t" "${runs:-?}" \
        $((wall_ms / 1000)) $((wall_ms % 1000)) "${done_line:-no Done line}" "$(find "$corpus" -type f | wc -l)")
    if ((rc != 0)); then
        line+="  FAILED (exit $rc)"
        : >"$work/$t/failed"
        {
            tail -n 40 "$log"
            repro=$(find "$artifacts" -type f | head -1)
            if [[ -n $repro ]]; then
                echo "$t: reproducer: $repro"
                echo "$t: re-run it: $bin $repro"
            else
                echo "$t: no reproducer written; log: $log"
            fi
        } >&2
    fi
    echo "$line" >"$work/$t/line"
    echo "$line"
}

# As many targets at a time as there are cores (each libFuzzer process uses
# one), so each still gets a core for its N seconds: on CI's 2 cores the
# three targets take two rounds instead of three.
jobs=$(nproc)
running=0
for t in "${targets[@]}"; do
    if ((running >= jobs)); then
        wait -n || true
        running=$((running - 1))
    fi
    run_target "$t" &
    running=$((running + 1))
done
wait || true

failed=()
summary=()
for t in "${targets[@]}"; do
    summary+=("$(cat "$work/$t/line" 2>/dev/null || echo "$t: no result")")
    [[ -e $work/$t/line && ! -e $work/$t/failed ]] || failed+=("$t")
done
# shellcheck disable=SC2034 # read by the EXIT trap
((${#failed[@]} == 0)) || keep=1

echo "== summary"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "fuzz.sh: failed: ${failed[*]} (work directory kept: $work)" >&2
    exit 1
fi
