#!/bin/sh
# CLI checks: every command has --help, bad arguments exit 2 with a message
# that says what is allowed, and `resnet summary` reports torchvision's
# parameter counts. Usage: tests/cli.sh BUILD_DIR
B=${1:-build}/resnet
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

for cmd in summary init forward; do
    "$B" "$cmd" --help | grep -q "usage: resnet $cmd" && ok || bad "$cmd --help"
done
"$B" --version | grep -q '^resnet [0-9]' && ok || bad "--version"

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

msg=$("$B" forward --model /nonexistent.safetensors --input x --output y 2>&1)
[ $? = 1 ] && echo "$msg" | grep -q "/nonexistent.safetensors" && ok || bad "forward names a missing model file"

echo "cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
