#!/bin/sh
# The public API against the program it shares its code with:
#   - examples/train (rn_train with callbacks) and `resnet train` with the
#     same settings write bit-identical weights;
#   - examples/classify (rn_classify_file) prints what `resnet predict`
#     prints for an RGB JPEG of another size given to a gray 28x28 model.
# Usage: tests/api.sh BUILD_DIR
BUILD=${1:-build}
B=$BUILD/resnet
PY=/usr/bin/python3
T=$(mktemp -d /tmp/rn_api_sh.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=2
pass=0 fail=0
check() {
    what=$1
    shift
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $what"; fi
}

"$PY" tests/make_data.py fmnist-subset "$T/fm" 512 128 || { echo "cannot build the subset"; exit 1; }
"$PY" tests/make_data.py folder "$T/img" || { echo "cannot build the image folder"; exit 1; }
echo '{"label-smoothing": 0.1}' > "$T/run.json"

# 6 steps of batch 64 (stopping inside the first epoch), seed 4, two threads
"$B" train --data "idx:$T/fm" --epochs 1 --steps 6 --bs 64 --seed 4 --threads 2 --out "$T/cli" > "$T/cli.txt" 2>&1
check "resnet train runs" test -s "$T/cli/last.safetensors"
"$BUILD/examples/train" "idx:$T/fm" "$T/api.safetensors" 1 6 64 4 > "$T/api.txt" 2>&1
check "examples/train runs" grep -q "^model: $T/api.safetensors" "$T/api.txt"
"$BUILD/test_api" same "$T/cli/last.safetensors" "$T/api.safetensors"
check "rn_train and resnet train: identical weights" test $? = 0
# a whole epoch with the callbacks' lines
"$BUILD/examples/train" "idx:$T/fm" "$T/api1.safetensors" 1 0 128 4 > "$T/api1.txt" 2>&1
cat "$T/api1.txt"
check "examples/train: per-epoch line" grep -qE "^epoch 1/1  train_loss [0-9.]+  valid_loss [0-9.]+  accuracy 0\.[0-9]+" "$T/api1.txt"

img="$T/img/val/square/000.jpg"
"$BUILD/examples/classify" "$T/api1.safetensors" "$img" > "$T/classify.txt"
check "examples/classify runs" test $? = 0
"$B" predict --model "$T/api1.safetensors" "$img" | tail -n +2 > "$T/predict.txt"
cat "$T/classify.txt"
check "classify prints 5 classes" test "$(wc -l < "$T/classify.txt")" = 5
check "classify = resnet predict" cmp -s "$T/classify.txt" "$T/predict.txt"
"$BUILD/examples/classify" "$T/api1.safetensors" /nonexistent.png 2> "$T/err.txt"
check "classify: missing file exits 1 naming it" test $? = 1 -a -n "$(grep /nonexistent.png "$T/err.txt")"
# --json: one parseable record per epoch and nothing else on stdout; --quiet: no output at all
"$B" train --data "idx:$T/fm" --epochs 2 --bs 128 --blocks 1,1 --widths 8,16 --stem cifar --threads 2 --json \
    --config "$T/run.json" > "$T/json.txt" 2> "$T/json.err"
check "train --json exits 0" test $? = 0
"$PY" - "$T/json.txt" <<'PYEOF' && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL train --json records"; cat "$T/json.txt"; }
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["epoch"] for r in rows] == [0, 1] and all(r["epochs"] == 2 for r in rows), rows
for r in rows:
    assert 0 <= r["accuracy"] <= 1 and 0 <= r["top5"] <= 1 and r["seconds"] > 0
    assert math.isfinite(r["train_loss"]) and math.isfinite(r["valid_loss"])
PYEOF
"$B" train --data "idx:$T/fm" --epochs 1 --bs 128 --blocks 1,1 --widths 8,16 --stem cifar --threads 2 --quiet \
    --out "$T/quiet" > "$T/quiet.txt" 2>&1
check "train --quiet prints nothing and trains" test $? = 0 -a ! -s "$T/quiet.txt" -a -s "$T/quiet/last.safetensors"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
