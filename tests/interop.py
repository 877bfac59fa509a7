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
import tempfile

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
import torch_models as tm  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
TOL = 1e-4
counts = {"passed": 0, "failed": 0}


def check(ok, what):
    counts["passed" if ok else "failed"] += 1
    print(("ok   " if ok else "FAIL ") + what)


def rel(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    return ((a - b).norm() / (b.norm() + 1e-30)).item()


def resnet(*args):
    r = subprocess.run([os.path.join(BUILD, "resnet"), *map(str, args)], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr)
    return r.stdout


def forward(tmp, model_path, x, train=False):
    xp, yp = os.path.join(tmp, "x.safetensors"), os.path.join(tmp, "y.safetensors")
    st.save(xp, {"input": x})
    resnet("forward", "--model", model_path, "--input", xp, "--output", yp, *(["--train"] if train else []))
    return st.load(yp)[0]["logits"]


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


def randomize(model):
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var") or (name.endswith("weight") and t.dim() == 1):
                t.copy_(torch.rand(t.shape) + 0.5)
            elif name.endswith("running_mean") or (name.endswith("bias") and t.dim() == 1):
                t.copy_(torch.randn(t.shape) * 0.1)


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
    torch.set_num_threads(2)
    torch.manual_seed(1)
    with tempfile.TemporaryDirectory() as tmp:
        for test in (test_init, test_from_torchvision, test_label_smoothing):
            try:
                test(tmp)
            except Exception as ex:
                check(False, f"{test.__name__}: {ex}")
    print(f"interop: {counts['passed']} passed, {counts['failed']} failed")
    sys.exit(1 if counts["failed"] else 0)


if __name__ == "__main__":
    main()
