#!/bin/sh
# Runs every libFuzzer target of build-fuzz/ (make fuzz) over its committed
# seed corpus and then fuzzes it for a while, under ASan + UBSan; a target
# passes when libFuzzer finds no crash, leak, undefined behaviour or timeout.
#   tests/fuzz.sh [SECONDS [TARGET...]]
# SECONDS is the time for all targets together (default 60, split evenly).
# New inputs go to a scratch directory, never into tests/fuzz/corpus; a
# failing input is kept as $FUZZ_OUT/<target>/crash-* (default: a temp dir
# that is printed). Prints "N passed, M failed" last, as tests/run.sh wants.
DIR=${FUZZ_BUILD:-build-fuzz}
TOTAL=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=${*:-"safetensors idx cifar image args"}
OUT=${FUZZ_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/rnfuzz-run.XXXXXX")}
n=$(echo $TARGETS | wc -w)
each=$((TOTAL / n))
[ "$each" -lt 1 ] && each=1
pass=0 fail=0

# max_len NAME: the largest input worth trying for a target (CIFAR records
# are 3073 bytes; safetensors seeds are model files of a few KB).
max_len() {
    case $1 in
    safetensors | cifar) echo 16384 ;;
    image) echo 8192 ;;
    args) echo 1024 ;;
    *) echo 4096 ;;
    esac
}

for t in $TARGETS; do
    bin=$DIR/fuzz_$t
    work=$OUT/$t
    mkdir -p "$work/new"
    if [ ! -x "$bin" ]; then
        echo "FAIL fuzz_$t: $bin is missing (run 'make fuzz')"
        fail=$((fail + 1))
        continue
    fi
    # -close_fd_mask=3: the targets' own messages (CLI errors) are not shown;
    # libFuzzer's report still is.
    TMPDIR=$work ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        "$bin" -max_total_time="$each" -timeout=20 -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
        -close_fd_mask=3 -print_final_stats=1 -artifact_prefix="$work/" "$work/new" "tests/fuzz/corpus/$t" \
        >"$work/log" 2>&1
    code=$?
    runs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$work/log" | grep -oE "[0-9]+$")
    cov=$(grep -E "^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)" "$work/log" | tail -1 | grep -oE "cov: [0-9]+ ft: [0-9]+")
    if [ "$code" = 0 ] && ! ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* >/dev/null 2>&1; then
        echo "ok fuzz_$t: ${runs:-?} runs in ${each}s, $cov"
        pass=$((pass + 1))
    else
        echo "FAIL fuzz_$t (exit $code): see $work/log"
        grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$work/log" | head -8
        fail=$((fail + 1))
    fi
done
[ "$fail" = 0 ] && [ -z "$FUZZ_OUT" ] && rm -rf "$OUT"
echo "fuzz: $pass passed, $fail failed"
[ "$fail" = 0 ]
