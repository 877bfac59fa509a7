#!/usr/bin/python3
"""The Fashion-MNIST recipe of RESULTS.md in PyTorch, step for step, to compare
wall time to a given test accuracy with `resnet train` on the same machine.

Mirrors `resnet train` exactly in what matters to the result: the same
architecture (tests/torch_models.py, written from the papers), Kaiming init,
normalization by the training set's mean/std, pad-and-random-crop plus
horizontal flips, batch size, AdamW (fastai's betas 0.9/0.99 and eps 1e-5,
weight decay 0.01 not applied to BN weights and biases) or SGD, and
OneCycleLR with fastai's settings (pct_start 0.25, div 25, final div 1e5,
momentum/beta1 cycling 0.95 -> 0.85 -> 0.95). Prints the same epoch table
and, at the end, the time at which the test accuracy first reached --target.

Usage: bench/fmnist_torch.py [--arch resnet20] [--epochs 5] [--lr 3e-3] [--bs 128]
                             [--opt adamw|sgd] [--wd W] [--pad 2] [--no-flip]
                             [--threads 2] [--target 0.93] [--seed 0]
Run with Debian's /usr/bin/python3 (python3-torch).
"""
import argparse
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from torch_models import Net  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist"


def load(split):
    """Images (N,1,28,28) uint8 and labels (N) of one split."""
    with gzip.open(f"{FMNIST}/{split}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(f"{FMNIST}/{split}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))


def augment(x, pad, flip, gen):
    """Zero-pad by `pad`, take a random 28x28 crop per sample, flip half."""
    n = x.shape[0]
    if pad:
        xp = F.pad(x, (pad, pad, pad, pad))
        ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        x = torch.stack([xp[i, :, oy[i]:oy[i] + 28, ox[i]:ox[i] + 28] for i in range(n)])
    if flip:
        f = torch.rand(n, generator=gen) < 0.5
        x = torch.where(f[:, None, None, None], x.flip(3), x)
    return x


def make_model(arch):
    depth = int(arch.replace("resnet", ""))
    n = (depth - 2) // 6
    return Net([n] * 3, [16, 32, 64], "basic", "cifar", 10, 1, "B")


def param_groups(model, wd):
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def evaluate(model, x, y, mean, std, bs=512):
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), bs):
            xb = ((x[i:i + bs].float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last)
            out = model(xb)
            loss += F.cross_entropy(out, y[i:i + bs], reduction="sum").item()
            correct += (out.argmax(1) == y[i:i + bs]).sum().item()
    model.train()
    return loss / len(x), correct / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="resnet20")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--bs", type=int, default=128)
    ap.add_argument("--opt", default="adamw")
    ap.add_argument("--wd", type=float, default=None)
    ap.add_argument("--pad", type=int, default=2)  # the fashion-mnist preset: 2 px of 28
    ap.add_argument("--no-flip", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--target", type=float, default=0.93)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stop", action="store_true", help="stop once --target is reached")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    mean, std = (xtr.float() / 255).mean().item(), (xtr.float() / 255).std(unbiased=False).item()
    model = make_model(a.arch).to(memory_format=torch.channels_last)
    steps = a.epochs * (len(xtr) // a.bs + (len(xtr) % a.bs > 0))
    if a.opt == "adamw":
        wd = 0.01 if a.wd is None else a.wd
        opt = torch.optim.AdamW(param_groups(model, wd), lr=a.lr, betas=(0.9, 0.99), eps=1e-5)
    else:
        wd = 5e-4 if a.wd is None else a.wd
        opt = torch.optim.SGD(param_groups(model, wd), lr=a.lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=steps, pct_start=0.25,
                                                div_factor=25, final_div_factor=1e5, base_momentum=0.85,
                                                max_momentum=0.95)
    print("epoch     train_loss  valid_loss  accuracy  time    ")
    start, reached, smooth, n = time.time(), None, 0.0, 0
    for epoch in range(a.epochs):
        t0 = time.time()
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(xtr), a.bs):
            idx = perm[i:i + a.bs]
            xb = augment(xtr[idx], a.pad, not a.no_flip, gen)
            xb = ((xb.float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(xb), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            n += 1
            smooth = 0.98 * smooth + 0.02 * loss.item()
        vl, acc = evaluate(model, xte, yte, mean, std)
        el = time.time() - t0
        print(f"{epoch:<10d}{smooth / (1 - 0.98 ** n):<12.6f}{vl:<12.6f}{acc:<10.6f}"
              f"{int(el) // 60:02d}:{int(el) % 60:02d}", flush=True)
        if reached is None and acc >= a.target:
            reached = time.time() - start
            if a.stop:
                break
    total = time.time() - start
    print(f"total {total:.1f} s; reached {a.target:.2f} at "
          + (f"{reached:.1f} s" if reached is not None else "never"))


if __name__ == "__main__":
    main()
