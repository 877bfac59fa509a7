#!/usr/bin/python3
"""Model files between the C implementation and torchvision, through the CLI.

- `resnet init` -> torchvision load_state_dict(strict=True) -> same eval logits
  as `resnet forward` (relative error 1e-4 in the 2-norm), and the init
  statistics are torchvision's (Kaiming-normal fan_out std, Linear bounds).
- torchvision state_dict saved to safetensors with no metadata -> `resnet forward`
  (architecture inferred from the tensors) -> same logits, eval and train mode,
  for RGB and a 1-channel variant.
- Label smoothing: loss and gradients equal CrossEntropyLoss(label_smoothing=0.1).
Usage: interop.py BUILD_DIR
"""
import math
import os
import subprocess
import sys

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
import torch_models as tm  # noqa: E402

from harness import BUILD, TOL, check, forward, randomize, rel, resnet, run_suite  # noqa: E402


def test_init(tmp):
    path = os.path.join(tmp, "init.safetensors")
    resnet("init", "--arch", "resnet50", "--classes", "7", "--seed", "3", "--out", path)
    sd, meta = st.load(path)
    model = torchvision.models.resnet50(num_classes=7)
    missing = model.load_state_dict(sd, strict=True)
    check(not missing.missing_keys and not missing.unexpected_keys, "init file loads into torchvision resnet50 strictly")
    check(meta.get("arch") == "resnet50" and meta.get("classes") == "7", "metadata names the architecture")
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        ref = model.eval()(x)
    e = rel(forward(tmp, path, x), ref)
    check(e < TOL, f"init -> torchvision -> same eval logits (relative error {e:.2e})")
    w = sd["layer3.1.conv2.weight"]
    expect = math.sqrt(2.0 / (w.shape[0] * 9))
    check(abs(w.std().item() / expect - 1) < 0.02 and abs(w.mean().item()) < expect * 0.02,
          f"conv init std {w.std().item():.5f} is Kaiming fan_out {expect:.5f}")
    fc = sd["fc.weight"]
    bound = 1 / math.sqrt(fc.shape[1])
    check(fc.abs().max().item() <= bound and fc.abs().max().item() > 0.95 * bound, "fc init uniform within 1/sqrt(fan_in)")
    check(all((sd[k] == 1).all() for k in sd if k.endswith("bn1.weight")) and
          all((sd[k] == 0).all() for k in sd if k.endswith("running_mean")), "BN starts at weight 1, running mean 0")
    zpath = os.path.join(tmp, "zero.safetensors")
    resnet("init", "--arch", "resnet18", "--zero-init-residual", "--out", zpath)
    z, _ = st.load(zpath)
    check((z["layer2.1.bn2.weight"] == 0).all() and (z["layer2.1.bn1.weight"] == 1).all(),
          "--zero-init-residual zeroes the last BN of each block only")


def test_from_torchvision(tmp):
    for label, model, shape in (("resnet18 RGB", torchvision.models.resnet18(num_classes=5), (3, 3, 72, 56)),
                                ("resnet34 1-channel", torchvision.models.resnet34(num_classes=3), (2, 1, 64, 64))):
        if shape[1] == 1:
            model.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        randomize(model)
        path = os.path.join(tmp, "tv.safetensors")
        st.save(path, model.state_dict())  # no metadata: the architecture is inferred
        x = torch.randn(shape)
        with torch.no_grad():
            ref_eval, ref_train = model.eval()(x), model.train()(x)
        e1, e2 = rel(forward(tmp, path, x), ref_eval), rel(forward(tmp, path, x, True), ref_train)
        check(e1 < TOL, f"torchvision {label} -> C eval logits (relative error {e1:.2e})")
        check(e2 < TOL, f"torchvision {label} -> C train-mode logits (relative error {e2:.2e})")


def test_label_smoothing(tmp):
    torch.manual_seed(0)
    model = tm.cifar(20, "B")
    randomize(model)
    mp, bp, op = (os.path.join(tmp, f) for f in ("ls.safetensors", "b.safetensors", "o.safetensors"))
    st.save(mp, model.state_dict(), {"arch": "resnet20"})
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([1, 0, 9, 4])
    st.save(bp, {"input": x, "labels": y})
    r = subprocess.run([os.path.join(BUILD, "parity_driver"), "grads", mp, bp, op, "0.1"], capture_output=True)
    check(r.returncode == 0, "driver runs with label smoothing")
    out, grads = st.load(op)[0], st.load(op + ".grads")[0]
    model.train()
    loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
    loss.backward()
    e = abs(out["loss"].item() - loss.item()) / loss.item()
    check(e < TOL, f"label-smoothed loss (relative error {e:.2e})")
    e = max(rel(grads[k], p.grad) for k, p in model.named_parameters())
    check(e < 1e-3, f"label-smoothed gradients (largest relative error {e:.2e})")


def main():
    run_suite("interop", (test_init, test_from_torchvision, test_label_smoothing))


if __name__ == "__main__":
    main()
