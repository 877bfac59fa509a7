"""Builds the small datasets the end-to-end training tests use.

  make_data.py fmnist-subset OUT N_TRAIN N_TEST
      the first N_TRAIN / N_TEST Fashion-MNIST images as an idx: directory
  make_data.py folder OUT
      an image folder (train/ and val/, 3 classes of coloured shapes) with
      every kind of file a user's folder may hold: RGB, grayscale, CMYK and
      progressive JPEGs, palette, 16-bit and RGBA PNGs, plus a truncated JPEG
      and a text file (which must be skipped, not crash the run).
"""
import gzip
import os
import random
import sys

import numpy
from PIL import Image, ImageDraw

FMNIST = "/usr/share/datasets/fashion-mnist"


def idx_subset(out, n_train, n_test):
    """Copies the first n images and labels of each split, keeping the IDX headers valid."""
    os.makedirs(out, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        for kind, hdr, per in (("images-idx3", 16, 784), ("labels-idx1", 8, 1)):
            with gzip.open(f"{FMNIST}/{split}-{kind}-ubyte.gz", "rb") as f:
                data = f.read()
            head = bytearray(data[:hdr])
            head[4:8] = n.to_bytes(4, "big")
            with gzip.open(f"{out}/{split}-{kind}-ubyte.gz", "wb") as f:
                f.write(bytes(head) + data[hdr:hdr + n * per])


def shape_image(cls, rng, size=48):
    """A noisy background with one shape whose kind and colour depend on the class."""
    bg = tuple(rng.randrange(0, 60) for _ in range(3))
    im = Image.new("RGB", (size + rng.randrange(0, 30), size + rng.randrange(0, 20)), bg)
    d = ImageDraw.Draw(im)
    x, y = rng.randrange(2, 12), rng.randrange(2, 12)
    w, h = rng.randrange(24, 34), rng.randrange(24, 34)
    colour = [(230, 40, 40), (40, 230, 40), (60, 60, 240)][cls]
    if cls == 0:
        d.ellipse([x, y, x + w, y + h], fill=colour)
    elif cls == 1:
        d.rectangle([x, y, x + w, y + h], fill=colour)
    else:
        d.polygon([(x, y + h), (x + w // 2, y), (x + w, y + h)], fill=colour)
    return im


def save_variant(im, path_base, i):
    """Saves im in one of the formats a folder may hold, chosen by i."""
    kind = i % 7
    if kind == 0:
        im.save(path_base + ".jpg", quality=92)
    elif kind == 1:
        im.convert("L").save(path_base + ".jpeg", quality=92)
    elif kind == 2:
        im.convert("CMYK").save(path_base + ".jpg", quality=92)
    elif kind == 3:
        im.save(path_base + ".JPG", quality=92, progressive=True)
    elif kind == 4:
        im.convert("P", palette=Image.ADAPTIVE, colors=32).save(path_base + ".png")
    elif kind == 5:
        im.convert("RGBA").save(path_base + ".png")
    else:  # 16-bit grayscale PNG
        gray = numpy.asarray(im.convert("L"), dtype=numpy.uint16) * 257
        Image.fromarray(gray, mode="I;16").save(path_base + ".png")


def folder(out, n_train=60, n_val=15):
    """Writes out/train/<class>/ and out/val/<class>/ plus the broken files."""
    rng = random.Random(7)
    names = ["circle", "square", "triangle"]
    for split, n in (("train", n_train), ("val", n_val)):
        for c, name in enumerate(names):
            d = f"{out}/{split}/{name}"
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                save_variant(shape_image(c, rng), f"{d}/{i:03d}", i)
    good = f"{out}/train/circle/000.jpg"
    with open(good, "rb") as f:
        data = f.read()
    with open(f"{out}/train/circle/broken.jpg", "wb") as f:
        f.write(data[: len(data) // 2])
    with open(f"{out}/train/square/notes.txt", "w") as f:
        f.write("not an image\n")
    with open(f"{out}/labels.txt", "w") as f:
        f.write("circle round thing\nsquare four corners\ntriangle three corners\n")


if __name__ == "__main__":
    if sys.argv[1] == "fmnist-subset":
        idx_subset(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "folder":
        folder(sys.argv[2])
    else:
        sys.exit("usage: make_data.py fmnist-subset OUT N_TRAIN N_TEST | folder OUT")
