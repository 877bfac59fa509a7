#!/bin/sh
# `make install` into a temporary prefix, then what a user of the installed
# library does: build examples/classify.c with `pkg-config --cflags --libs
# resnet` only (from a copy outside the tree, so no in-tree header is seen),
# run it against the installed shared library, and compare its output with
# the installed `resnet predict`. Also checks the SONAME, the links, the
# static library, the header and the man page.
# Usage: tests/install.sh BUILD_DIR (the optimized build; `make` builds it)
BUILD=${1:-build}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/rn_install.XXXXXX)
trap 'rm -rf "$T"' EXIT
P=$T/prefix
pass=0 fail=0
check() {
    what=$1
    shift
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $what"; fi
}

make -s --no-print-directory install PREFIX="$P" > "$T/make.txt" 2>&1
check "make install" test $? = 0
V=$(sed -n 's/^#define RN_VERSION "\(.*\)"/\1/p' include/resnet.h)
M=${V%%.*}
check "libresnet.so.$V installed" test -f "$P/lib/libresnet.so.$V"
check "SONAME libresnet.so.$M" sh -c "readelf -d '$P/lib/libresnet.so.$V' | grep -q 'SONAME.*\[libresnet.so.$M\]'"
check "links so -> so.$M -> so.$V" test "$(readlink "$P/lib/libresnet.so")" = "libresnet.so.$M" -a \
    "$(readlink "$P/lib/libresnet.so.$M")" = "libresnet.so.$V"
check "static library holds rn_classify_file" sh -c "nm '$P/lib/libresnet.a' 2>/dev/null | grep -q ' T rn_classify_file'"
check "header" cmp -s include/resnet.h "$P/include/resnet.h"
check "man page renders" sh -c "man -l '$P/share/man/man1/resnet.1' 2>/dev/null | grep -q 'EXIT STATUS'"
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
check "pkg-config version" test "$(pkg-config --modversion resnet)" = "$V"
cp examples/classify.c "$T/classify.c"
(cd "$T" && cc -std=c11 -Wall -Wextra -Werror classify.c $(pkg-config --cflags --libs resnet) -o classify) 2> "$T/cc.txt"
check "classify.c builds with pkg-config alone" test -x "$T/classify"
cat "$T/cc.txt"
check "classify links the installed libresnet.so.$M" sh -c \
    "LD_LIBRARY_PATH='$P/lib' ldd '$T/classify' | grep -q '$P/lib/libresnet.so.$M'"

# a small model trained by the installed program, and an RGB image
"$PY" tests/make_data.py fmnist-subset "$T/fm" 256 64 && "$PY" tests/make_data.py folder "$T/img" > /dev/null
"$P/bin/resnet" train --data "idx:$T/fm" --epochs 1 --bs 64 --threads 2 --out "$T/run" > /dev/null 2>&1
check "installed resnet trains" test -s "$T/run/last.safetensors"
for img in "$T/img/val/circle/004.png" "$T/img/val/triangle/002.jpg"; do
    LD_LIBRARY_PATH="$P/lib" "$T/classify" "$T/run/last.safetensors" "$img" > "$T/c.txt"
    "$P/bin/resnet" predict --model "$T/run/last.safetensors" "$img" | tail -n +2 > "$T/p.txt"
    check "classify = resnet predict on $(basename "$img")" sh -c "test -s '$T/c.txt' && cmp -s '$T/c.txt' '$T/p.txt'"
done
cat "$T/c.txt"
make -s --no-print-directory uninstall PREFIX="$P" > /dev/null 2>&1
check "uninstall leaves no file" test -z "$(find "$P" -type f -o -type l)"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
