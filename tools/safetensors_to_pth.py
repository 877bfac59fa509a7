#!/usr/bin/python3
"""Converts a resnet model file (.safetensors) to a PyTorch state_dict (.pth).

  tools/safetensors_to_pth.py IN.safetensors OUT.pth [--wrap KEY]

The tensors already carry torchvision's names and layouts, so the result loads
with load_state_dict(strict=True) into torchvision.models.resnetNN(num_classes=K)
(or the matching timm ResNet). --wrap KEY saves {KEY: state_dict} instead (e.g.
"state_dict" or "model"). The file's metadata (architecture, mean/std, class
names) is printed, since a state_dict has no place for it.
"""
import argparse
import collections
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("input", help="the .safetensors model file")
    p.add_argument("output", help="the .pth file to write")
    p.add_argument("--wrap", help="save {WRAP: state_dict} instead of the bare state_dict")
    args = p.parse_args()
    try:
        sd, meta = safetensors_io.load(args.input)
        sd = collections.OrderedDict(sd)
        tmp = f"{args.output}.tmp.{os.getpid()}"
        torch.save({args.wrap: sd} if args.wrap else sd, tmp)
        os.replace(tmp, args.output)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        sys.exit(f"safetensors_to_pth: error: {e}")
    print(f"wrote {args.output}: {len(sd)} tensors")
    for k, v in meta.items():
        print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
