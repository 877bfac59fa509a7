#!/bin/sh
# CLI checks: every command has --help, bad arguments exit 2 with a message
# that says what is allowed, and `resnet summary` reports torchvision's
# parameter counts. Usage: tests/cli.sh BUILD_DIR
B=${1:-build}/resnet
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

for cmd in summary init forward export; do
    "$B" "$cmd" --help | grep -q "usage: resnet $cmd" && ok || bad "$cmd --help"
done
"$B" --version | grep -q '^resnet [0-9]' && ok || bad "--version"
for cmd in train lr-find eval predict bench; do
    "$B" "$cmd" --help | grep -q "usage: resnet $cmd" && ok || bad "$cmd --help"
done
"$B" --help | grep -q "exit status: 0 success, 1 failure while running, 2 bad usage" && ok || bad "--help: exit codes"
"$B" train --help | grep -q -- "--json" && ok || bad "train --help: --json"


for spec in "resnet18 11689512" "resnet34 21797672" "resnet50 25557032" "resnet101 44549160" "resnet152 60192808"; do
    set -- $spec
    "$B" summary --arch "$1" | grep -qx "params: $2" && ok || bad "summary $1 params $2"
done
"$B" summary --arch resnet50 | grep -qx "MACs: 4089184256" && ok || bad "resnet50 MACs"
"$B" summary --blocks 2,2 --widths 8,16 --block preact-basic --stem cifar --classes 3 --in-channels 1 --size 20x28 \
    | grep -q "fc .* 3 x    1 x 1" && ok || bad "custom summary"

# expect_usage_error DESCRIPTION PATTERN ARGS...: exit 2 and PATTERN on stderr
expect_usage_error() {
    what=$1 pattern=$2
    shift 2
    msg=$("$B" "$@" 2>&1 >/dev/null)
    code=$?
    [ "$code" = 2 ] && echo "$msg" | grep -q "$pattern" && ok || bad "$what (exit $code: $msg)"
}
expect_usage_error "unknown arch" "known: resnet18" summary --arch resnet19
expect_usage_error "bad classes" "classes.*\[1, 1000000\]" summary --classes 0
expect_usage_error "bad size" "size like 224" summary --size 0x3
expect_usage_error "unknown option" "unknown option '--bogus'" summary --bogus
expect_usage_error "missing value" "needs a value" summary --arch
expect_usage_error "unknown command" "unknown command" frobnicate
expect_usage_error "init without --out" "out FILE is required" init --arch resnet18
expect_usage_error "bad shortcut" "must be A or B" summary --arch resnet20 --shortcut C
expect_usage_error "NaN bn eps" "finite number" init --arch resnet20 --bn-eps nan --out x.safetensors

# --config: TOML and JSON files give the same as the flags; the command line overrides them
C=$(mktemp -d /tmp/rn_cli_config.XXXXXX)
printf '# a custom net\nblocks = [2, 2]   # per stage\nwidths = "8,16"\nblock = "basic"\nstem = "cifar"\nclasses = 3\nsize = "20x28"\n' > "$C/run.toml"
printf '{"blocks": [2, 2], "widths": "8,16", "block": "basic", "stem": "cifar", "classes": 3, "size": "20x28"}' > "$C/run.json"
want=$("$B" summary --blocks 2,2 --widths 8,16 --block basic --stem cifar --classes 3 --size 20x28)
[ -n "$want" ] && [ "$("$B" summary --config "$C/run.toml")" = "$want" ] && ok || bad "--config TOML = flags"
[ "$("$B" summary --config="$C/run.json")" = "$want" ] && ok || bad "--config JSON = flags"
"$B" summary --config "$C/run.toml" --classes 5 | grep -q "fc .* 5 x    1 x 1" && ok || bad "--config: the command line overrides"
printf 'classes = 3\n[table]\n' > "$C/bad.toml"
expect_usage_error "--config bad line" "bad.toml:2: expected key = value" summary --config "$C/bad.toml"
expect_usage_error "--config missing file" "cannot read $C/none.json" summary --config "$C/none.json"
printf '{"classes": {"x": 1}}' > "$C/bad.json"
expect_usage_error "--config JSON object value" "'classes' must be a string" summary --config "$C/bad.json"
rm -rf "$C"

msg=$("$B" forward --model /nonexistent.safetensors --input x --output y 2>&1)
[ $? = 1 ] && echo "$msg" | grep -q "/nonexistent.safetensors" && ok || bad "forward names a missing model file"

# resnet bench: usage, bad arguments, and tiny real runs whose JSON must parse
# with positive rates (a check of the plumbing, not of the speed).
"$B" bench --help | grep -q "usage: resnet bench" && ok || bad "bench --help"
expect_usage_error "bench batch 0" "bs.*\[1, 65536\]" bench --bs 0
expect_usage_error "bench bad mode" "mode must be train or infer" bench --mode foo
expect_usage_error "bench unknown arch" "unknown architecture" bench --arch resnet19
expect_usage_error "bench bad steps" "steps.*\[1, 1000000\]" bench --steps 0
expect_usage_error "bench bad dtype" "dtype must be fp32, bf16 or bf16-direct, not 'fp16'" bench --dtype fp16
expect_usage_error "train bad dtype" "dtype must be fp32, bf16 or bf16-direct" train --dtype half
# bf16 on kernels without AVX512_BF16 (RN_CPU=avx512 leaves them out): exit 1, saying why
msg=$(RN_CPU=avx512 "$B" bench --arch resnet20 --bs 2 --size 8 --steps 1 --dtype bf16 2>&1 >/dev/null)
[ $? = 1 ] && echo "$msg" | grep -q "AVX512_BF16" && ok || bad "bench --dtype bf16 without AVX512_BF16: $msg"
# bench_json MODE: the tiny run's JSON line checked by Python; prints "ok" or why not.
bench_json() {
    "$B" bench --arch resnet20 --bs 2 --size 8 --in-channels 1 --steps 1 --warmup 0 --json --mode "$1" | /usr/bin/python3 -c '
import json, math, sys
lines = sys.stdin.read().strip().splitlines()
r = json.loads(lines[-1]) if len(lines) == 1 else {}
good = (r.get("images_per_s", 0) > 0 and r.get("gflops", 0) > 0 and r.get("arch") == "resnet20" and r.get("batch") == 2
        and r.get("in_channels") == 1 and r.get("mode") == sys.argv[1] and r.get("peak_rss_mib", 0) > 0
        and r.get("macs_per_image", 0) > 0 and (sys.argv[1] == "infer" or math.isfinite(r.get("loss") or math.nan)))
print("ok" if good else "bad: %r" % lines)' "$1"
}
for mode in train infer; do
    out=$(bench_json $mode 2>&1)
    [ "$out" = ok ] && ok || bad "bench tiny $mode run: $out"
done
# the same tiny run in bf16, where the CPU has it (reported as bf16, finite loss)
if grep -q avx512_bf16 /proc/cpuinfo; then
    out=$("$B" bench --arch resnet20 --bs 4 --size 16 --in-channels 1 --steps 2 --warmup 0 --dtype bf16 --json)
    echo "$out" | /usr/bin/python3 -c 'import json, math, sys; r = json.loads(sys.stdin.read().strip().splitlines()[-1])
sys.exit(not (r["dtype"] == "bf16" and r["images_per_s"] > 0 and math.isfinite(r["loss"])))' \
        && ok || bad "bench tiny bf16 run: $out"
    out=$("$B" bench --arch resnet20 --bs 4 --size 16 --in-channels 1 --steps 2 --warmup 0 --dtype bf16-direct --json)
    echo "$out" | /usr/bin/python3 -c 'import json, math, sys; r = json.loads(sys.stdin.read().strip().splitlines()[-1])
sys.exit(not (r["dtype"] == "bf16-direct" and math.isfinite(r["loss"])))' \
        && ok || bad "bench tiny bf16-direct run: $out"
    out=$("$B" bench --peak --threads 1 --dtype bf16 --json)
    echo "$out" | /usr/bin/python3 -c 'import json, sys; r = json.load(sys.stdin); sys.exit(not (r["peak_gflops"] > 0 and r["dtype"] == "bf16"))' \
        && ok || bad "bench --peak --dtype bf16: $out"
fi
out=$("$B" bench --peak --threads 1 --json)
echo "$out" | /usr/bin/python3 -c 'import json, sys; r = json.load(sys.stdin); sys.exit(not (r["peak_gflops"] > 0 and r["threads"] == 1))' \
    && ok || bad "bench --peak: $out"

# resnet bench --loader: a short real run on Fashion-MNIST, and a missing folder named in the error.
out=$("$B" bench --loader fashion-mnist --batches 3 --json 2>&1)
echo "$out" | /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.stdin.read().strip().splitlines()[-1])
sys.exit(not (r["images_per_s"] > 0 and r["spec"] == "fashion-mnist" and r["batch"] == 128 and r["batches"] == 3
              and r["height"] == 28 and r["channels"] == 1 and r["workers"] == 0 and r["peak_rss_mib"] > 0))' \
    && ok || bad "bench --loader fashion-mnist: $out"
msg=$("$B" bench --loader /nonexistent/dir --json 2>&1 >/dev/null)
[ $? = 1 ] && echo "$msg" | grep -q "/nonexistent/dir" && ok || bad "bench --loader on a missing folder names it: $msg"
expect_usage_error "bench loader batches 0" "batches.*\[1, 1000000\]" bench --loader fashion-mnist --batches 0
expect_usage_error "bench loader bad augment" "augment.*expected one of" bench --loader fashion-mnist --augment foo
expect_usage_error "bench workers without loader" "apply to --loader" bench --workers 2
expect_usage_error "bench loader with a model option" "do not apply" bench --loader fashion-mnist --arch resnet50

# train, lr-find, eval, predict: usage and argument checks (training itself: tests/train.sh)
for cmd in train lr-find eval predict; do
    "$B" "$cmd" --help | grep -q "usage: resnet $cmd" && ok || bad "$cmd --help"
done
expect_usage_error "train batch 0" "bs.*\[1, " train --bs 0
expect_usage_error "train zero epochs" "epochs.*\[1, " train --epochs 0
expect_usage_error "train NaN lr" "lr.*finite number" train --lr nan
expect_usage_error "train negative lr" "lr.*finite number" train --lr -1
expect_usage_error "train unknown optimizer" "adamw, adam or sgd" train --opt rmsprop
expect_usage_error "train unknown schedule" "onecycle, cosine, step or constant" train --sched linear
expect_usage_error "train bad milestones" "milestones" train --sched step --milestones 3,x
expect_usage_error "train unknown arch" "known: resnet18" train --arch resnet19
expect_usage_error "train lr-find option" "unknown option '--iters'" train --iters 5
expect_usage_error "lr-find train option" "unknown option '--out'" lr-find --out x
expect_usage_error "eval without model" "model is required" eval
expect_usage_error "predict without images" "at least one image" predict --model x.safetensors
msg=$("$B" train --data /nonexistent/dir --epochs 1 2>&1 >/dev/null)
[ $? = 1 ] && echo "$msg" | grep -q "/nonexistent/dir" && ok || bad "train on a missing folder names it: $msg"
msg=$("$B" predict --model /nonexistent.safetensors x.jpg 2>&1 >/dev/null)
[ $? = 1 ] && echo "$msg" | grep -q "/nonexistent.safetensors" && ok || bad "predict names a missing model: $msg"

# every flag says what it allows (issue 6): a sample across train, lr-find, eval and predict
expect_usage_error "train negative batch" "bs: '-3' is not an integer in \[1, 1048576\]" train --bs -3
expect_usage_error "train size 0" "size like 224 or 160x224" train --size 0
expect_usage_error "train size 3x" "size like 224" train --size 3x
expect_usage_error "train workers" "workers.*\[0, 256\]" train --workers -1
expect_usage_error "train threads" "threads.*\[1, 1024\]" train --threads 0
expect_usage_error "train seed" "seed.*\[0, " train --seed -1
expect_usage_error "train steps" "steps.*\[1, " train --steps 0
expect_usage_error "train momentum" "momentum.*\[0, 0.9999\]" train --momentum 2
expect_usage_error "train pct-start" "pct-start.*\[0.001, 0.999\]" train --pct-start 0
expect_usage_error "train infinite wd" "wd.*finite number" train --wd inf
expect_usage_error "train label smoothing" "label-smoothing.*\[0, 0.999\]" train --label-smoothing 1
expect_usage_error "train milestone overflow" "milestones.*\[1, 1000000\]" train --sched step --milestones 4294967297
expect_usage_error "train scale-aug overflow" "LO,HI with 1 <= LO <= HI" train --scale-aug 1,99999999999
expect_usage_error "train bad preset" "preset" train --preset sharp
expect_usage_error "train bad normalize" "dataset, imagenet or none" train --normalize zscore
expect_usage_error "train bad classes" "classes.*\[1, 1000000\]" train --classes -5
expect_usage_error "train bad widths" "widths.*\[1, 4096\]" train --blocks 1,1 --widths 8,0
expect_usage_error "train flag with a value" "takes no value" train --nesterov=1
expect_usage_error "lr-find end below start" "end-lr 0.001 must be larger than --start-lr 0.1" lr-find --start-lr 0.1 --end-lr 1e-3
expect_usage_error "lr-find iters" "iters.*\[10, " lr-find --iters 5
expect_usage_error "eval negative batch" "bs.*\[1, " eval --model m.safetensors --bs -1
expect_usage_error "eval most-confused" "most-confused.*\[0, " eval --model m.safetensors --most-confused -1
expect_usage_error "predict topk" "topk.*\[1, 64\]" predict --model m.safetensors --topk 0 x.jpg
expect_usage_error "predict show" "show /nonexistent: not an existing directory" predict --model m.safetensors --show /nonexistent x.jpg
msg=$("$B" predict --dtype fp32 --model /nonexistent.safetensors x.jpg 2>&1 >/dev/null)
[ $? = 1 ] && echo "$msg" | grep -q "/nonexistent.safetensors" && ok || bad "predict --dtype takes its value: $msg"

# --bs against the network: a batch of 1 where a batchnorm sees a single value per
# channel is refused; a last batch of 1 image is dropped with a note, not a failed run
T=$(mktemp -d "${TMPDIR:-/tmp}/rn_cli.XXXXXX")
/usr/bin/python3 -c '
import struct, sys
for split, n in (("train", 9), ("t10k", 3)):
    open("%s/%s-images-idx3-ubyte" % (sys.argv[1], split), "wb").write(struct.pack(">IIII", 0x803, n, 8, 8) + bytes(range(64)) * n)
    open("%s/%s-labels-idx1-ubyte" % (sys.argv[1], split), "wb").write(struct.pack(">II", 0x801, n) + bytes(i % 2 for i in range(n)))' "$T"
expect_usage_error "batch of 1 too small for batchnorm" "bs 1 at --size 4x4 is too small to train resnet20.*use --bs 2 or more" \
    train --data "idx:$T" --arch resnet20 --size 4 --bs 1
msg=$("$B" train --data "idx:$T" --arch resnet20 --size 4 --bs 4 --epochs 1 2>&1)
[ $? = 0 ] && echo "$msg" | grep -q "9 images make a last batch of 1.*dropped each epoch" && ok ||
    bad "a last batch of 1 is dropped with a note: $msg"
rm -rf "$T"

# regression: a stride-2 backward-data phase with no rows (8x1 input) divided by zero
"$B" bench --arch resnet18 --size 8x1 --bs 2 --steps 1 --warmup 0 --peak-gflops 500 >/dev/null 2>&1 && ok || bad "bench resnet18 8x1 train"

echo "cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
