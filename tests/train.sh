#!/bin/sh
# End-to-end training checks on real data (optimized build only):
#   - 2 epochs on a 6,000-image Fashion-MNIST subset pass 80% accuracy;
#   - a run stopped mid-epoch and resumed ends with the same weights, byte
#     for byte, as the run that was never stopped;
#   - eval reproduces the accuracy the training table printed;
#   - an image folder with every kind of file trains, evaluates and predicts,
#     skipping (and counting) the broken files;
#   - lr-find prints a suggestion and draws its curve.
# Usage: tests/train.sh BUILD_DIR [quick]
#   quick: only the small image-folder runs (for the sanitizer build)
B=${1:-build}/resnet
QUICK=${2:-}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/rn-train.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
# check DESCRIPTION COMMAND...: passes when the command succeeds.
check() { what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
# last_acc FILE: the accuracy column of the last epoch row of a training table.
last_acc() { awk '/^[0-9]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9:]+/ {a=$4} END {print a}' "$1"; }

D="--data idx:$T/fm --bs 32 --seed 3 --threads 2"
if [ -z "$QUICK" ]; then
"$PY" tests/make_data.py fmnist-subset "$T/fm" 6000 1000 || { echo "cannot build the subset"; exit 1; }

# 1. accuracy after 2 epochs (no augmentation: it pays only over longer runs)
"$B" train $D --no-augment --epochs 2 --out "$T/full2" > "$T/full2.txt" 2>&1
cat "$T/full2.txt"
acc=$(last_acc "$T/full2.txt")
check "2 epochs on 6000 images: accuracy $acc >= 0.80" awk "BEGIN {exit !($acc >= 0.80)}"
check "table header" grep -q "^epoch     train_loss  valid_loss  accuracy  time" "$T/full2.txt"
for f in last.safetensors best.safetensors log.csv curves.png last.state.safetensors; do
    check "writes $f" test -s "$T/full2/$f"
done
check "log.csv has 2 epochs" test "$(grep -c '^[0-9]' "$T/full2/log.csv")" = 2

# 2. eval reproduces the table's accuracy
"$B" eval --model "$T/full2/last.safetensors" --data "idx:$T/fm" > "$T/eval.txt" 2>&1
top1=$(awk '/^top1:/ {print $2}' "$T/eval.txt")
check "eval top1 $top1 equals the table's $acc" awk "BEGIN {d = $top1 - $acc; exit !(d < 1e-6 && d > -1e-6)}"
check "eval lists most confused pairs" grep -q "most confused" "$T/eval.txt"

# 2b. the same run with bf16 convolutions (where the CPU has AVX512_BF16)
# ends near the fp32 accuracy, and eval in bf16 agrees with its table to
# a few images (eval folds BN into the weights before rounding them to
# bf16, the training loop's validation does not)
if grep -q avx512_bf16 /proc/cpuinfo; then
    "$B" train $D --no-augment --epochs 2 --dtype bf16 --out "$T/bf2" > "$T/bf2.txt" 2>&1
    bacc=$(last_acc "$T/bf2.txt")
    check "bf16: 2 epochs accuracy $bacc within 0.03 of fp32's $acc" \
        awk "BEGIN {d = $bacc - $acc; exit !(d < 0.03 && d > -0.03)}"
    "$B" eval --model "$T/bf2/last.safetensors" --data "idx:$T/fm" --dtype bf16 > "$T/bf2eval.txt" 2>&1
    btop1=$(awk '/^top1:/ {print $2}' "$T/bf2eval.txt")
    check "bf16 eval top1 $btop1 within 0.005 of the bf16 table's $bacc" \
        awk "BEGIN {d = $btop1 - $bacc; exit !(d < 0.005 && d > -0.005)}"
fi

# 3. resume mid-epoch gives the same weights as an uninterrupted run
"$B" train $D --epochs 1 --out "$T/once" > /dev/null 2>&1
"$B" train $D --epochs 1 --out "$T/split" --steps 40 > "$T/split1.txt" 2>&1
check "stop mid-epoch says how to resume" grep -q "resnet train --resume" "$T/split1.txt"
cp -r "$T/split" "$T/split-copy" # resumed below from a copy: the original must stay as it was
"$B" train --resume "$T/split" > "$T/split2.txt" 2>&1
check "resumed run ends with identical weights" cmp -s "$T/once/last.safetensors" "$T/split/last.safetensors"
check "resumed log has one row" test "$(grep -c '^[0-9]' "$T/split/log.csv")" = 1
"$B" train --resume "$T/split-copy" > "$T/split3.txt" 2>&1
check "a copied run directory resumes in place" cmp -s "$T/once/last.safetensors" "$T/split-copy/last.safetensors"
check "resuming the copy adds no row to the original" test "$(grep -c '^[0-9]' "$T/split/log.csv")" = 1

# 3b. --out creates missing parents (as mkdir -p); a file in the way is an error naming it
"$B" train $D --epochs 1 --steps 2 --out "$T/new/nested/run" > /dev/null 2>&1
check "--out creates missing parent directories" test -f "$T/new/nested/run/last.safetensors"
: > "$T/afile"
msg=$("$B" train $D --epochs 1 --steps 2 --out "$T/afile" 2>&1)
code=$?
check "--out on a file is refused, naming it" sh -c '[ "$1" != 0 ] && echo "$2" | grep -q "afile exists and is not a directory"' _ "$code" "$msg"

fi

# 4. an image folder with odd and broken files
"$PY" tests/make_data.py folder "$T/img"
"$B" train --data "$T/img" --labels "$T/img/labels.txt" --size 32 --blocks 1,1 --widths 8,16 --bs 16 --epochs 2 \
    --lr 1e-2 --threads 2 --out "$T/imgrun" > "$T/img.txt" 2>&1
cat "$T/img.txt"
check "folder: trains" test -s "$T/imgrun/last.safetensors"
check "folder: broken JPEG reported by path" grep -q "broken.jpg" "$T/img.txt"
"$B" eval --model "$T/imgrun/last.safetensors" --data "$T/img" --labels "$T/img/labels.txt" \
    --confusion "$T/confusion.png" > "$T/imgeval.txt" 2>&1
check "folder: eval" grep -q "^top1:" "$T/imgeval.txt"
check "folder: confusion picture" test -s "$T/confusion.png"
"$B" predict --model "$T/imgrun/last.safetensors" --topk 2 "$T/img/val/square/000.jpg" > "$T/pred.txt" 2>&1
check "predict names classes with the --labels names" grep -qE "round thing|four corners|three corners" "$T/pred.txt"
"$B" train --data "$T/img" --size 32 --blocks 1,1 --widths 8,16 --bs 16 --epochs 1 --strict > "$T/strict.txt" 2>&1
check "--strict fails on the broken JPEG" test $? != 0
check "--strict names the file" grep -q "broken.jpg" "$T/strict.txt"

# 5. fine-tuning a pretrained body with another class count: the frozen
#    phase moves only batchnorm and the new head
"$B" init --blocks 1,1 --widths 8,16 --classes 5 --seed 9 --out "$T/pre.safetensors" > /dev/null
"$B" train --data "$T/img" --size 32 --blocks 1,1 --widths 8,16 --bs 16 --init "$T/pre.safetensors" \
    --fine-tune 1 --epochs 1 --steps 3 --threads 2 --out "$T/ft" > "$T/ft.txt" 2>&1
check "fine-tune announces the new head" grep -q "new head for 3 classes" "$T/ft.txt"
check "frozen phase: convs fixed, BN and head trained" "$PY" tests/finetune_check.py "$T/pre.safetensors" "$T/ft/last.safetensors"
"$B" train --resume "$T/ft" > "$T/ft2.txt" 2>&1
check "fine-tune runs both phases to the end" test "$(grep -c '^[0-9]' "$T/ft/log.csv")" = 2

# 6. lr-find
"$B" lr-find --data "$T/img" --size 32 --blocks 1,1 --widths 8,16 --bs 16 --iters 30 --plot "$T/lr.png" > "$T/lr.txt" 2>&1
check "lr-find suggests a rate" grep -q "suggested lr" "$T/lr.txt"
check "lr-find draws the curve" test -s "$T/lr.png"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
