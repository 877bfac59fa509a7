#!/usr/bin/python3
"""ONNX export and the checkpoint tools, through the CLI.

- `resnet export` of resnet18 (fixed batch, odd input size), resnet20 with the
  option-A shortcut, preact-resnet18 (BatchNormalization nodes) and a small
  bottleneck net (symbolic batch): each passes onnx.checker (full_check) and
  strict shape inference gives logits (batch, K); a small interpreter of the
  emitted ops written here with torch.nn.functional runs the graph, and its
  logits equal `resnet forward`'s (relative error 1e-4 in the 2-norm).
  BN statistics are randomized so that folding is exercised.
- Errors: an unwritable path, a directory in the way and a missing model exit 1
  naming the file; the directory is left as it was and no temp file remains.
- tools/pth_to_safetensors.py: a torchvision resnet18 checkpoint wrapped as
  {"state_dict": {"module.": ...}} -> `resnet forward` = torchvision's eval
  logits; a timm-style {"model": ...} without num_batches_tracked; resnet20
  with option A and --arch. tools/safetensors_to_pth.py: back to .pth, loads
  with strict=True, every tensor bit-equal.
onnxruntime is not packaged in Debian bookworm: the interpreter stands in for it.
Usage: export.py BUILD_DIR
"""
import os
import subprocess
import sys

import onnx
import onnx.numpy_helper
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
import torch_models as tm  # noqa: E402

from harness import BUILD, TOL, check, forward, randomize, rel, resnet, run_suite  # noqa: E402

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")


def run(*args):
    return subprocess.run([*map(str, args)], capture_output=True, text=True)


# ---- a tiny ONNX interpreter: exactly the ops the exporter emits ----------------

def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def op_conv(x, a, w, b=None):
    p = a.get("pads", [0, 0, 0, 0])
    assert p[0] == p[2] and p[1] == p[3] and a.get("group", 1) == 1
    assert list(a["kernel_shape"]) == list(w.shape[2:])
    return F.conv2d(x, w, b, stride=tuple(a.get("strides", [1, 1])), padding=(p[0], p[1]))


def op_maxpool(x, a):
    p = a.get("pads", [0, 0, 0, 0])
    assert p[0] == p[2] and p[1] == p[3]
    return F.max_pool2d(x, tuple(a["kernel_shape"]), tuple(a.get("strides", [1, 1])), (p[0], p[1]))


def op_slice(x, a, starts, ends, axes, steps):
    idx = [slice(None)] * x.dim()
    for s, e, ax, st_ in zip(starts.tolist(), ends.tolist(), axes.tolist(), steps.tolist()):
        idx[ax] = slice(s, min(e, x.shape[ax]), st_)
    return x[tuple(idx)]


def op_pad(x, a, pads):
    assert a.get("mode", b"constant") in (b"constant", "constant")
    n = x.dim()
    p = pads.tolist()
    torch_pads = []
    for ax in reversed(range(n)):  # F.pad lists the last axis first
        torch_pads += [p[ax], p[ax + n]]
    return F.pad(x, torch_pads)


def op_gemm(x, a, w, b):
    w = w.t() if a.get("transB", 0) else w
    return x @ w + b


OPS = {
    "Conv": op_conv,
    "BatchNormalization": lambda x, a, g, b, m, v: F.batch_norm(x, m, v, g, b, False, 0.0, a.get("epsilon", 1e-5)),
    "Relu": lambda x, a: F.relu(x),
    "Add": lambda x, a, y: x + y,
    "MaxPool": op_maxpool,
    "GlobalAveragePool": lambda x, a: x.mean(dim=(2, 3), keepdim=True),
    "Flatten": lambda x, a: x.flatten(a.get("axis", 1)),
    "Gemm": op_gemm,
    "Slice": op_slice,
    "Pad": op_pad,
}


def run_onnx(model, x):
    """Evaluates the graph on x with the ops above; returns its single output."""
    env = {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
    env[model.graph.input[0].name] = x
    for node in model.graph.node:
        args = [env[i] for i in node.input]
        env[node.output[0]] = OPS[node.op_type](args[0], attrs(node), *args[1:])
    return env[model.graph.output[0].name]


# ---- export tests ----------------------------------------------------------------

def randomize_file(path):
    """Randomizes BN affine parameters and running statistics of a model file, keeping its metadata."""
    sd, meta = st.load(path)
    g = torch.Generator().manual_seed(7)
    for k, t in sd.items():
        if k.endswith("running_var") or (k.endswith("weight") and t.dim() == 1):
            sd[k] = torch.rand(t.shape, generator=g) + 0.5
        elif k.endswith("running_mean") or (k.endswith("bias") and t.dim() == 1):
            sd[k] = torch.randn(t.shape, generator=g) * 0.1
    st.save(path, sd, meta)


def test_export(tmp, label, init_args, shape, batch_opt):
    mp, op = os.path.join(tmp, "m.safetensors"), os.path.join(tmp, "m.onnx")
    resnet("init", *init_args, "--seed", "5", "--out", mp)
    randomize_file(mp)
    n, c, h, w = shape
    resnet("export", "--model", mp, "--onnx", op, "--batch", batch_opt, "--size", f"{h}x{w}")
    model = onnx.load(op)
    try:
        onnx.checker.check_model(model, full_check=True)
        ok = True
    except onnx.checker.ValidationError as e:
        ok, _ = False, print(e)
    check(ok and model.opset_import[0].version == 13, f"{label}: onnx.checker (full_check) accepts the opset-13 model")
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    dims = [d.dim_param or d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    k = model.graph.initializer[[i.name for i in model.graph.initializer].index("fc.bias")].dims[0]
    want = ["N" if batch_opt == "dynamic" else int(batch_opt), k]
    check(dims == want, f"{label}: shape inference gives logits {dims} (expected {want})")
    ops = sorted({nd.op_type for nd in model.graph.node})
    x = torch.randn(shape)
    with torch.no_grad():
        y = run_onnx(model, x)
    e = rel(y, forward(tmp, mp, x))
    check(e < TOL, f"{label}: ONNX graph ({', '.join(ops)}) = resnet forward (relative error {e:.2e})")
    return ops


def test_exports(tmp):
    ops = test_export(tmp, "resnet18", ["--arch", "resnet18", "--classes", "7"], (2, 3, 72, 56), "2")
    check("BatchNormalization" not in ops, "resnet18: every BN is folded into its convolution")
    ops = test_export(tmp, "resnet20 option A", ["--arch", "resnet20", "--shortcut", "A"], (3, 3, 32, 32), "3")
    check("Slice" in ops and "Pad" in ops, "resnet20 option A: the shortcut is Slice + Pad")
    ops = test_export(tmp, "preact-resnet18", ["--arch", "preact-resnet18", "--classes", "5"], (2, 3, 64, 64), "2")
    check("BatchNormalization" in ops, "preact-resnet18: pre-activation BNs stay BatchNormalization nodes")
    test_export(tmp, "custom bottleneck, symbolic batch",
                ["--blocks", "1,2", "--widths", "8,16", "--block", "bottleneck", "--classes", "4"], (3, 3, 40, 48),
                "dynamic")


def test_errors(tmp):
    mp = os.path.join(tmp, "e.safetensors")
    resnet("init", "--arch", "resnet20", "--out", mp)
    bad = os.path.join(tmp, "no-such-dir", "m.onnx")
    r = run(os.path.join(BUILD, "resnet"), "export", "--model", mp, "--onnx", bad)
    check(r.returncode == 1 and bad in r.stderr, f"unwritable output: exit 1 naming the file ({r.stderr.strip()})")
    op = os.path.join(tmp, "a-directory.onnx")
    os.mkdir(op)
    with open(os.path.join(op, "inside"), "w") as f:
        f.write("x")
    r = run(os.path.join(BUILD, "resnet"), "export", "--model", mp, "--onnx", op)
    kept = os.listdir(op) == ["inside"]
    check(r.returncode == 1 and op in r.stderr and kept, f"rename over a directory fails: exit 1, left as it was ({r.stderr.strip()})")
    missing = os.path.join(tmp, "missing.safetensors")
    r = run(os.path.join(BUILD, "resnet"), "export", "--model", missing, "--onnx", os.path.join(tmp, "x.onnx"))
    check(r.returncode == 1 and missing in r.stderr, f"a missing model: exit 1 naming it ({r.stderr.strip()})")
    r = run(os.path.join(BUILD, "resnet"), "export", "--model", mp, "--onnx", op, "--batch", "0")
    check(r.returncode == 2, "--batch 0 is a usage error")
    leftovers = [f for f in os.listdir(tmp) if ".tmp." in f]
    check(not leftovers, f"no temp files left behind {leftovers}")


# ---- the tools -----------------------------------------------------------------------

def tool(name, *args):
    r = run(sys.executable, os.path.join(TOOLS, name), *args)
    if r.returncode:
        raise RuntimeError(r.stderr)
    return r.stdout


def test_tools(tmp):
    model = torchvision.models.resnet18(num_classes=6)
    randomize(model)
    model.eval()
    pth, sf, back = (os.path.join(tmp, f) for f in ("tv.pth", "tv.safetensors", "back.pth"))
    torch.save({"state_dict": {"module." + k: v for k, v in model.state_dict().items()}, "epoch": 3}, pth)
    tool("pth_to_safetensors.py", pth, sf)
    x = torch.randn(2, 3, 64, 72)
    with torch.no_grad():
        ref = model(x)
    e = rel(forward(tmp, sf, x), ref)
    check(e < TOL, f"torchvision resnet18 .pth -> safetensors -> resnet forward = torchvision (relative error {e:.2e})")
    tool("safetensors_to_pth.py", sf, back)
    fresh = torchvision.models.resnet18(num_classes=6)
    res = fresh.load_state_dict(torch.load(back), strict=True)
    same = all(torch.equal(fresh.state_dict()[k], v) for k, v in model.state_dict().items())
    check(not res.missing_keys and not res.unexpected_keys and same,
          "safetensors -> .pth loads into torchvision resnet18 with strict=True, every tensor equal")

    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"model": sd}, pth)
    tool("pth_to_safetensors.py", pth, sf)
    e = rel(forward(tmp, sf, x), ref)
    check(e < TOL, f"timm-style {{'model': ...}} without num_batches_tracked converts (relative error {e:.2e})")

    cifar = tm.cifar(20, "A")
    randomize(cifar)
    cifar.eval()
    torch.save(cifar.state_dict(), pth)
    tool("pth_to_safetensors.py", pth, sf, "--arch", "resnet20", "--input-size", "32x32")
    _, meta = st.load(sf)
    xc = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        e = rel(forward(tmp, sf, xc), cifar(xc))
    check(e < TOL and meta.get("arch") == "resnet20" and meta.get("shortcut") == "A",
          f"--arch resnet20 with option A (no downsample tensors) -> same logits (relative error {e:.2e})")
    torch.save({"encoder.weight": torch.zeros(3)}, pth)
    r = run(sys.executable, os.path.join(TOOLS, "pth_to_safetensors.py"), pth, sf)
    check(r.returncode != 0 and pth in r.stderr and "conv1.weight" in r.stderr,
          f"a non-ResNet checkpoint is refused, naming the file ({r.stderr.strip()})")


def main():
    run_suite("export", (test_exports, test_errors, test_tools))


if __name__ == "__main__":
    main()
