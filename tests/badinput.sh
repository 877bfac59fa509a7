#!/bin/sh
# Bad input files through the CLI, as a user meets them: each must end with
# a non-zero exit and a "resnet: error:" naming the file and the problem
# (or, for images inside a folder, be skipped and counted), and never with a
# crash or a sanitizer report. Usage: tests/badinput.sh BUILD_DIR
B=${1:-build}/resnet
PY=/usr/bin/python3
W=$(mktemp -d "${TMPDIR:-/tmp}/rn_badinput.XXXXXX")
trap 'rm -rf "$W"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

# expect_error DESCRIPTION FILE PATTERN ARGS...: exit 1, an error line that
# names FILE and matches PATTERN, and no sanitizer report.
expect_error() {
    what=$1 file=$2 pattern=$3
    shift 3
    out=$("$B" "$@" 2>&1)
    code=$?
    line=$(echo "$out" | grep "^resnet: error:")
    if [ "$code" = 1 ] && echo "$line" | grep -qF "$file" && echo "$line" | grep -q "$pattern" &&
        ! echo "$out" | grep -q "Sanitizer"; then
        ok
        echo "  ok $what: $line"
    else
        bad "$what (exit $code): $(echo "$out" | tail -5)"
    fi
}

# ---- the files -------------------------------------------------------------
"$B" init --arch resnet20 --out "$W/m20.safetensors" >/dev/null || bad "init"
mkdir -p "$W/idx" "$W/cifar" "$W/img" "$W/st"
"$PY" - "$W" <<'EOF' || bad "making the bad files"
import io, os, struct, sys, zlib
from PIL import Image
w = sys.argv[1]
def put(name, data):
    with open(os.path.join(w, name), "wb") as f:
        f.write(data)
m = open(os.path.join(w, "m20.safetensors"), "rb").read()
put("st/empty.safetensors", b"")
put("st/trunc.safetensors", m[:len(m) // 2])
put("st/hlen60.safetensors", struct.pack("<Q", 1 << 60) + b"{}")
put("st/json.safetensors", struct.pack("<Q", 8) + b"{not js}")
# IDX: valid labels for 5 images; images zero-byte, truncated, wrong magic, 2^31 declared
lab = struct.pack(">II", 0x801, 5) + bytes([0, 1, 2, 1, 0])
img = struct.pack(">IIII", 0x803, 5, 4, 4) + bytes(80)
for case, data in (("empty", b""), ("trunc", img[:50]), ("magic", struct.pack(">I", 0x802) + img[4:]),
                   ("huge", struct.pack(">IIII", 0x803, 1 << 31, 28, 28) + bytes(784))):
    os.makedirs(os.path.join(w, "idx", case))
    put("idx/%s/train-labels-idx1-ubyte" % case, lab)
    put("idx/%s/train-images-idx3-ubyte" % case, data)
    put("idx/%s/t10k-labels-idx1-ubyte" % case, lab)
    put("idx/%s/t10k-images-idx3-ubyte" % case, img)
# CIFAR-10: a good test batch, a bad data_batch_1 (zero-byte, truncated, bad label)
rec = bytes([3]) + bytes(3072)
for case, data in (("empty", b""), ("trunc", rec + rec[:100]), ("label", bytes([200]) + bytes(3072))):
    os.makedirs(os.path.join(w, "cifar", case))
    put("cifar/%s/test_batch.bin" % case, rec)
    put("cifar/%s/data_batch_1.bin" % case, data)
    for i in range(2, 6):
        put("cifar/%s/data_batch_%d.bin" % (case, i), rec)
# images: good ones, then broken in every way
im = Image.new("RGB", (20, 16))
im.putdata([(x * 12, y * 15, 90) for y in range(16) for x in range(20)])
b = io.BytesIO(); im.save(b, "JPEG", quality=90); jpg = b.getvalue()
b = io.BytesIO(); im.save(b, "PNG"); png = b.getvalue()
put("img/good.jpg", jpg)
put("img/good.png", png)
put("img/empty.png", b"")
put("img/text.jpg", b"hello, world\n")
put("img/trunc.jpg", jpg[:len(jpg) // 2])
put("img/trunc.png", png[:len(png) // 2])
dht = jpg.index(b"\xff\xc4")  # a Huffman table whose counts claim more codes than exist
put("img/huffman.jpg", jpg[:dht + 4] + bytes([0]) + bytes([255] * 16) + jpg[dht + 21:])
i = png.index(b"IDAT") + 8  # one flipped byte in the compressed data
put("img/crc.png", png[:i] + bytes([png[i] ^ 0x55]) + png[i + 1:])
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
put("img/huge.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
    + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
EOF

# ---- model files ----------------------------------------------------------
for f in empty:"too short for the 8-byte header" trunc:"past the end of the data section" \
    hlen60:"header length 1152921504606846976 is more than" json:"not valid JSON"; do
    name=${f%%:*} pattern=${f#*:}
    expect_error "model $name" "$W/st/$name.safetensors" "$pattern" predict --model "$W/st/$name.safetensors" "$W/img/good.png"
done
expect_error "model wrong magic (a PNG)" "$W/img/good.png" "header length" eval --model "$W/img/good.png"
expect_error "model is a directory" "$W/st" "not a regular file" eval --model "$W/st"

# ---- IDX and CIFAR --------------------------------------------------------
expect_error "idx zero-byte" "$W/idx/empty/train-images-idx3-ubyte" "not an IDX images file" train --data "idx:$W/idx/empty"
expect_error "idx truncated" "$W/idx/trunc/train-images-idx3-ubyte" "shorter than its header says" train --data "idx:$W/idx/trunc"
expect_error "idx wrong magic" "$W/idx/magic/train-images-idx3-ubyte" "magic 0x00000803 expected, got 0x00000802" \
    train --data "idx:$W/idx/magic"
expect_error "idx 2^31 images" "$W/idx/huge/train-images-idx3-ubyte" "2147483648 items of 28x28" train --data "idx:$W/idx/huge"
expect_error "cifar zero-byte" "$W/cifar/empty/data_batch_1.bin" "size 0 is not a positive multiple of the 3073-byte record" \
    train --data "cifar10:$W/cifar/empty"
expect_error "cifar truncated" "$W/cifar/trunc/data_batch_1.bin" "size 3173 is not a positive multiple" \
    train --data "cifar10:$W/cifar/trunc"
expect_error "cifar bad label" "$W/cifar/label/data_batch_1.bin" "record 0 has label 200, expected < 10" \
    train --data "cifar10:$W/cifar/label"

# ---- single images (predict): each named, the good one still classified ----
for f in empty.png:"empty file" text.jpg:"not a JPEG or PNG file" trunc.jpg:"Premature end of JPEG file" \
    trunc.png:"truncated" huffman.jpg:"Huffman" crc.png:"IDAT: incorrect data check" huge.png:"100000x100000 pixels, more than the limit"; do
    name=${f%%:*} pattern=${f#*:}
    expect_error "image $name" "$W/img/$name" "$pattern" predict --model "$W/m20.safetensors" "$W/img/$name"
done
out=$("$B" predict --model "$W/m20.safetensors" "$W/img/good.jpg" "$W/img/empty.png" 2>&1)
[ $? = 1 ] && echo "$out" | grep -q "^$W/img/good.jpg" && ! echo "$out" | grep -q Sanitizer && ok ||
    bad "predict goes on past a bad image: $out"

# ---- image folders ----------------------------------------------------------
F=$W/folder
mkdir -p "$F/train" "$F/val"
expect_error "folder with no classes" "$F/train" "no class directories" train --data "$F"
mkdir -p "$F/train/ant" "$F/train/bee" "$F/val/ant" "$F/val/bee"
echo notes >"$F/train/bee/notes.txt"
expect_error "class with no images" "$F/train/ant" "class directory has no .jpg, .jpeg or .png images" train --data "$F"
long=$(printf 'L%.0s' $(seq 1 246))
for c in ant bee; do
    for i in 1 2 3 4; do cp "$W/img/good.png" "$F/train/$c/$i.png"; done
    cp "$W/img/good.jpg" "$F/val/$c/v.jpg"
done
cp "$W/img/good.jpg" "$F/train/ant/$(printf 'caf\351-\377\376').jpg" # not UTF-8
cp "$W/img/good.png" "$F/train/ant/$long.png"                       # a 250-byte name
cp "$W/img/good.jpg" "$F/val/bee/$(printf '\351t\351').jpg"
cp "$W/img/good.png" "$F/val/ant/$long.png"
cp "$W/img/empty.png" "$W/img/trunc.jpg" "$W/img/text.jpg" "$F/train/bee/"
ln -s y.jpg "$F/train/bee/x.jpg" && ln -s x.jpg "$F/train/bee/y.jpg" # a symlink loop of files
ln -s . "$F/train/ant/self"                                         # symlink loops of directories
mkdir "$F/val/bee/sub" && ln -s .. "$F/val/bee/sub/up"
out=$("$B" train --data "$F" --arch resnet20 --size 16 --bs 4 --epochs 1 --workers 1 --out "$W/run" 2>&1)
code=$?
echo "$out" | grep -E "^resnet: (skipped|.*images;|[0-9]+ image files)" | sed 's/^/  /'
[ "$code" = 0 ] && ! echo "$out" | grep -q Sanitizer && ok || bad "training on a folder with bad files (exit $code): $out"
echo "$out" | grep -q "^resnet: $F (train): 13 images; skipped 3 files that are not .jpg" && ok ||
    bad "training counts the 3 non-image files (notes.txt and the looping links) it skipped"
echo "$out" | grep -q "^resnet: 3 image files could not be decoded and were skipped" && ok ||
    bad "training counts the 3 undecodable images"
for f in empty.png trunc.jpg text.jpg; do
    echo "$out" | grep -q "^resnet: skipped $F/train/bee/$f" && ok || bad "training names the skipped $f"
done
out=$("$B" eval --model "$W/run/last.safetensors" --data "$F" 2>&1)
code=$?
[ "$code" = 0 ] && echo "$out" | grep -qx "images: 4" && ! echo "$out" | grep -q Sanitizer && ok ||
    bad "eval reads the non-UTF-8 and 250-byte names through the directory loop (exit $code): $(echo "$out" | head -3)"

echo "badinput: $pass passed, $fail failed"
[ "$fail" = 0 ]
