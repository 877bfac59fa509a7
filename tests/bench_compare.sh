#!/bin/sh
# Smoke check of bench/compare (not part of tests/run.sh: it takes about a
# minute and depends on timing): the quick run of configuration 1 must
# finish, print the peak line and a table row with numbers on both sides,
# and reject a bad --configs. Usage: tests/bench_compare.sh [BUILD_DIR]
BUILD=${1:-build}
cd "$(dirname "$0")/.." || exit 1
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

out=$(bench/compare --quick --configs 1 --build "$BUILD" 2>/tmp/bench_compare.$$.err)
code=$?
[ "$code" = 0 ] && ok || bad "bench/compare --quick --configs 1 exited $code: $(tail -3 /tmp/bench_compare.$$.err)"
echo "$out" | grep -qE '^- peak: [0-9]+\.[0-9] GFLOP/s' && ok || bad "peak line"
echo "$out" | grep -qE '^- machine: .*, [0-9]+ cores' && ok || bad "machine line"
# The row: config, ours img/s, PyTorch img/s and layout, a ratio, GFLOP/s, % of peak, RSS x2, RSS ratio.
row=$(echo "$out" | grep -E '^\| 1: resnet20 28x28x1, batch 128, train')
echo "$row" | grep -qE '^\| [^|]+ \| [0-9.]+ \| [0-9.]+ (nchw|channels_last) \| [0-9.]+x \| [0-9.]+ \| [0-9.]+ \| [0-9]+ \| [0-9]+ \| [0-9.]+ \|$' \
    && ok || bad "table row: '$row'"
[ "$(echo "$out" | grep -c '^| [0-9]')" = 2 ] && ok || bad "one table row and one details row"

msg=$(bench/compare --configs 9 2>&1)
[ $? = 2 ] && echo "$msg" | grep -q "unknown configuration 9" && ok || bad "bad --configs: $msg"
rm -f /tmp/bench_compare.$$.err

echo "bench_compare: $pass passed, $fail failed"
[ "$fail" = 0 ]
