"""Writes the seed corpora of the libFuzzer targets (tests/fuzz/corpus/<target>/).

  /usr/bin/python3 tests/fuzz/make_corpus.py BUILD_DIR

Each seed is a small valid (or nearly valid) input in the layout its target
expects (see the comment at the top of tests/fuzz/fuzz_<target>.c), so the
fuzzer starts from inside every format rather than from random bytes. The
files are committed; rerun this only to change them. BUILD_DIR/resnet
writes the model files (tiny custom networks, a few KB each).
"""
import gzip
import io
import json
import os
import struct
import subprocess
import sys

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import st  # noqa: E402  (tests/st.py: the safetensors encoding the tests share)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    """Writes one seed file."""
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(build):
    """Plain tensor files, then tiny models with and without metadata."""
    put("safetensors", "plain", st.pack([("a", "F32", [2, 3], bytes(24)), ("b", "I64", [], bytes(8)),
                                          ("c", "U8", [0], b"")], {"k": "v"}))
    put("safetensors", "dtypes", st.pack([(n, n, [2], bytes(2 * s)) for n, s in
                                           (("F64", 8), ("F16", 2), ("BF16", 2), ("I32", 4), ("I16", 2),
                                            ("I8", 1), ("BOOL", 1))]))
    tmp = os.path.join(ROOT, "tmp.safetensors")
    nets = {"basic": ["--blocks", "1", "--widths", "2", "--stem", "cifar", "--classes", "2", "--in-channels", "1"],
            "bottleneck": ["--blocks", "1,1", "--widths", "1,2", "--block", "bottleneck", "--classes", "3"],
            "preact": ["--blocks", "1", "--widths", "2", "--block", "preact-basic", "--stem", "cifar",
                       "--classes", "2", "--shortcut", "A"]}
    for name, args in nets.items():
        subprocess.run([os.path.join(build, "resnet"), "init", *args, "--out", tmp], check=True,
                       stdout=subprocess.DEVNULL)
        with open(tmp, "rb") as f:
            data = f.read()
        put("safetensors", "model-" + name, data)
        header, blob = st.split(data)
        header.pop("__metadata__", None)  # a torchvision-style state_dict: architecture inferred
        put("safetensors", "state-dict-" + name, struct.pack("<Q", len(json.dumps(header))) +
            json.dumps(header).encode() + blob)
    os.remove(tmp)


def idx_file(magic, dims, payload):
    """An IDX file: magic, big-endian dimensions, bytes."""
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload


def idx():
    """Label and image files of 5 4x4 images, plain and gzip, one or both halves."""
    labels = idx_file(0x801, [5], bytes([0, 1, 2, 1, 0]))
    images = idx_file(0x803, [5, 4, 4], bytes(range(80)))
    for flags, lab, img, name in ((0, labels, images, "plain"), (1, labels, images, "both"),
                                  (0, gzip.compress(labels, mtime=0), gzip.compress(images, mtime=0), "gzip")):
        put("idx", name, bytes([flags]) + struct.pack(">H", len(lab)) + lab + img)


def cifar():
    """Two CIFAR-10 records (with and without a names file), one CIFAR-100 record."""
    px = bytes(i % 251 for i in range(3072))
    rec10 = bytes([3]) + px + bytes([9]) + px
    names = "\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                       "truck"]).encode()
    put("cifar", "cifar10", bytes([0, 0, 0]) + rec10)
    put("cifar", "cifar10-names", bytes([0]) + struct.pack(">H", len(names)) + names + rec10)
    put("cifar", "cifar100", bytes([1, 0, 0, 4, 42]) + px)


def image():
    """Small JPEGs and PNGs of every kind the decoder converts."""
    im = Image.new("RGB", (9, 7))
    im.putdata([(x * 28, y * 36, (x + y) * 16) for y in range(7) for x in range(9)])
    exif = Image.Exif()
    exif[0x0112] = 6
    variants = {
        "rgb.jpg": (im, "JPEG", {"quality": 90}),
        "gray.jpg": (im.convert("L"), "JPEG", {}),
        "cmyk.jpg": (im.convert("CMYK"), "JPEG", {}),
        "progressive.jpg": (im, "JPEG", {"progressive": True}),
        "exif6.jpg": (im, "JPEG", {"exif": exif.tobytes()}),
        "rgb.png": (im, "PNG", {}),
        "palette.png": (im.convert("P"), "PNG", {}),
        "rgba.png": (im.convert("RGBA"), "PNG", {}),
        "gray16.png": (im.convert("L").convert("I").point(lambda v: v * 257).convert("I;16"), "PNG", {}),
        "gray1.png": (im.convert("1"), "PNG", {}),
        "interlaced.png": (im, "PNG", {"interlace": 1}),
    }
    for i, (name, (img, fmt, kw)) in enumerate(variants.items()):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        put("image", name, bytes([i % 16]) + buf.getvalue())


def args():
    """Argument lists of train, lr-find, eval and predict, NUL-separated."""
    lists = [
        (0, ["--data", "cifar10:/x", "--arch", "resnet56", "--opt", "sgd", "--lr", "0.1", "--nesterov",
             "--epochs", "30", "--bs", "64", "--size", "32x32"]),
        (0, ["--blocks", "3,4,6,3", "--widths", "64,128,256,512", "--block", "bottleneck", "--stem", "imagenet",
             "--sched", "step", "--milestones", "30,60", "--gamma", "0.1", "--wd", "1e-4"]),
        (0, ["--preset", "fastai", "--min-scale", "0.35", "--rotate", "10", "--zoom", "1.1", "--warp", "0.2",
             "--lighting", "0.2", "--pca", "0.1", "--erase", "0.25", "--scale-aug", "256,480", "--pad=4",
             "--presize", "160", "--eval-resize", "256", "--normalize", "imagenet", "--no-flip"]),
        (0, ["--fine-tune", "1", "--lr-mult", "100", "--init", "m.safetensors", "--label-smoothing", "0.1",
             "--clip", "1", "--dtype", "bf16", "--threads", "2", "--seed", "7", "--steps", "10", "--out", "r"]),
        (1, ["--start-lr", "1e-6", "--end-lr", "1", "--iters", "50", "--plot", "x.png", "--workers", "2"]),
        (2, ["--model", "m.safetensors", "--data", "idx:/d", "--bs", "32", "--most-confused", "5",
             "--confusion", "c.png", "--strict"]),
        (3, ["--model", "m.safetensors", "--topk", "3", "a.jpg", "--show", "out", "b.png", "--dtype", "fp32"]),
        (0, ["--help"]),
    ]
    for i, (cmd, a) in enumerate(lists):
        put("args", "args%d" % i, bytes([cmd]) + b"\0".join(x.encode() for x in a))


if __name__ == "__main__":
    safetensors(sys.argv[1] if len(sys.argv) > 1 else "build")
    idx()
    cifar()
    image()
    args()
