#!/bin/sh
# Runs every test suite against a build directory and prints the total as
# "N passed, M failed" on its last line; exits non-zero if anything failed.
#   tests/run.sh build        the optimized build (C tests, CLI, PyTorch parity,
#                             and a 60-second libFuzzer smoke run of build-fuzz/)
#   tests/run.sh build-san    the sanitizer build (C tests, CLI, parity on the small networks)
# PyTorch suites run with Debian's /usr/bin/python3 (python3-torch).
BUILD=${1:-build}
PY=/usr/bin/python3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# fontconfig (loaded by cairo for text) keeps a few hundred bytes until exit
export LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0"
total_pass=0 total_fail=0 status=0

# run NAME CMD...: runs one suite, adds its "N passed, M failed" line to the totals.
run() {
    name=$1
    shift
    echo "== $name"
    out=$("$@" 2>&1)
    code=$?
    echo "$out" | grep -vE "^(ok|  ok|pass) " | tail -40
    line=$(echo "$out" | grep -E "[0-9]+ passed, [0-9]+ failed" | tail -1)
    p=$(echo "$line" | grep -oE "[0-9]+ passed" | grep -oE "[0-9]+")
    f=$(echo "$line" | grep -oE "[0-9]+ failed" | grep -oE "[0-9]+")
    total_pass=$((total_pass + ${p:-0}))
    total_fail=$((total_fail + ${f:-0}))
    if [ "$code" != 0 ] || [ -z "$line" ]; then
        status=1
        [ -z "$line" ] && total_fail=$((total_fail + 1)) && echo "$out" | tail -20
    fi
}

run kernels "$BUILD/test_kernels"
run kernels-avx2 env RN_CPU=avx2 "$BUILD/test_kernels"
run kernels-generic env RN_CPU=generic "$BUILD/test_kernels"
run safetensors "$BUILD/test_safetensors"
run model "$BUILD/test_model"
run augment "$BUILD/test_augment"
run data "$BUILD/test_data"
run report "$BUILD/test_report"
run api "$BUILD/test_api"
run cli tests/cli.sh "$BUILD"
run badinput tests/badinput.sh "$BUILD"
if [ "$BUILD" = build ]; then
    run interop "$PY" tests/interop.py "$BUILD"
    run export "$PY" tests/export.py "$BUILD"
    run api-cli tests/api.sh "$BUILD"
    run install tests/install.sh "$BUILD"
    run parity "$PY" tests/parity.py "$BUILD"
    run optim "$PY" tests/optim.py "$BUILD"
    run train tests/train.sh "$BUILD"
    run dist "$PY" tests/dist.py "$BUILD"
    run faults tests/faults.sh "$BUILD"
    run fuzz tests/fuzz.sh 60
else
    run parity-small env PARITY_SMALL=1 "$PY" tests/parity.py "$BUILD"
    run train-quick tests/train.sh "$BUILD" quick
fi
echo "tests: $total_pass passed, $total_fail failed"
exit $status
