#!/usr/bin/python3
"""Reference computations for tests/test_augment.c, with PIL and torchvision.

Usage: augment_ref.py JOBS
JOBS holds one job per line; each reads a raw uint8 HWC image and writes a
raw float32 HWC result in [0,1]:
  resize IN H W C RESIZE OH OW OUT
      torchvision Resize(RESIZE) + CenterCrop((OH,OW)) on a PIL image
      (PIL's antialiased bilinear), output rounded to uint8 by PIL
  crop IN H W C TOP LEFT CH CW OH OW OUT
      torchvision.transforms.functional.resized_crop on a float tensor,
      bilinear without antialiasing (plain bilinear, half-pixel centers)
  grid IN H W C OH OW M0 .. M8 OUT
      torch.nn.functional.grid_sample (bilinear, reflection padding,
      align_corners=False) at source = M * (x+0.5, y+0.5, 1) per output pixel
Prints "N passed, M failed" (jobs done / failed) as its last line.
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image


def read_image(path, h, w, c):
    """Raw uint8 HWC file -> numpy array (h, w, c)."""
    a = np.fromfile(path, dtype=np.uint8)
    return a.reshape(h, w, c)


def job_resize(args):
    """PIL/torchvision Resize + CenterCrop."""
    src, h, w, c, size, oh, ow, out = args[0], *map(int, args[1:7]), args[7]
    a = read_image(src, h, w, c)
    im = Image.fromarray(a[:, :, 0] if c == 1 else a, "L" if c == 1 else "RGB")
    im = T.CenterCrop((oh, ow))(T.Resize(size, interpolation=T.InterpolationMode.BILINEAR)(im))
    r = np.asarray(im, dtype=np.float32).reshape(oh, ow, c) / 255.0
    r.astype(np.float32).tofile(out)


def job_crop(args):
    """torchvision resized_crop on a tensor without antialiasing."""
    src, h, w, c, top, left, ch, cw, oh, ow, out = args[0], *map(int, args[1:10]), args[10]
    t = torch.from_numpy(read_image(src, h, w, c).astype(np.float32)).permute(2, 0, 1)
    r = TF.resized_crop(t, top, left, ch, cw, [oh, ow], T.InterpolationMode.BILINEAR, antialias=False)
    (r.permute(1, 2, 0).numpy() / 255.0).astype(np.float32).tofile(out)


def job_grid(args):
    """grid_sample with reflection padding at the homography's points."""
    src, h, w, c, oh, ow = args[0], *map(int, args[1:6])
    m = np.array([float(v) for v in args[6:15]], dtype=np.float64).reshape(3, 3)
    out = args[15]
    ys, xs = np.meshgrid(np.arange(oh) + 0.5, np.arange(ow) + 0.5, indexing="ij")
    p = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ m.T
    sx, sy = p[..., 0] / p[..., 2], p[..., 1] / p[..., 2]
    grid = np.stack([sx / w * 2 - 1, sy / h * 2 - 1], axis=-1)[None]
    t = torch.from_numpy(read_image(src, h, w, c).astype(np.float64)).permute(2, 0, 1)[None]
    r = F.grid_sample(t, torch.from_numpy(grid), mode="bilinear", padding_mode="reflection",
                      align_corners=False)
    (r[0].permute(1, 2, 0).numpy() / 255.0).astype(np.float32).tofile(out)


def main():
    done = failed = 0
    with open(sys.argv[1]) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            try:
                {"resize": job_resize, "crop": job_crop, "grid": job_grid}[parts[0]](parts[1:])
                done += 1
            except Exception as e:  # report and go on: the C test sees the missing output
                print("FAIL %s: %s" % (parts[0], e))
                failed += 1
    print("%d passed, %d failed" % (done, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
