"""What the Python suites that drive the CLI share: the build directory (argv[1]),
checks counted into the "N passed, M failed" line tests/run.sh reads, the
relative error, running `resnet` and `resnet forward`, and randomized BN state."""
import os
import subprocess
import sys
import tempfile

import torch

import st

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
TOL = 1e-4
counts = {"passed": 0, "failed": 0}


def check(ok, what):
    """Counts and prints one check."""
    counts["passed" if ok else "failed"] += 1
    print(("ok   " if ok else "FAIL ") + what)


def rel(a, b):
    """Relative error of a against b in the 2-norm."""
    a, b = a.double().flatten(), b.double().flatten()
    return ((a - b).norm() / (b.norm() + 1e-30)).item()


def resnet(*args):
    """Runs build/resnet; returns its stdout, raises with its stderr on failure."""
    r = subprocess.run([os.path.join(BUILD, "resnet"), *map(str, args)], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr)
    return r.stdout


def forward(tmp, model_path, x, train=False):
    """The logits `resnet forward` computes for the batch x (N, C, H, W)."""
    xp, yp = os.path.join(tmp, "x.safetensors"), os.path.join(tmp, "y.safetensors")
    st.save(xp, {"input": x})
    resnet("forward", "--model", model_path, "--input", xp, "--output", yp, *(["--train"] if train else []))
    return st.load(yp)[0]["logits"]


def randomize(model):
    """Gives a module's BN layers random affine parameters and running statistics."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var") or (name.endswith("weight") and t.dim() == 1):
                t.copy_(torch.rand(t.shape) + 0.5)
            elif name.endswith("running_mean") or (name.endswith("bias") and t.dim() == 1):
                t.copy_(torch.randn(t.shape) * 0.1)


def run_suite(name, tests):
    """Runs each test(tmp) in one temporary directory (an exception is a failed
    check), prints the totals and exits non-zero if anything failed."""
    torch.set_num_threads(2)
    torch.manual_seed(1)
    with tempfile.TemporaryDirectory() as tmp:
        for test in tests:
            try:
                test(tmp)
            except Exception as ex:
                check(False, f"{test.__name__}: {ex}")
    print(f"{name}: {counts['passed']} passed, {counts['failed']} failed")
    sys.exit(1 if counts["failed"] else 0)
