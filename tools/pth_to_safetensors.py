#!/usr/bin/python3
"""Converts a torchvision or timm ResNet checkpoint (.pth) to a resnet model file (.safetensors).

  tools/pth_to_safetensors.py IN.pth OUT.safetensors [--arch NAME] [--input-size HxW]
                              [--mean a,b,c] [--std a,b,c] [--class-names FILE]

The checkpoint may be a bare state_dict, one wrapped as {"state_dict": ...} or
{"model": ...} (training scripts, timm), or a pickled nn.Module; "module."
prefixes (DataParallel / DDP) are stripped. Tensors keep torchvision's names and
layouts and become float32 (num_batches_tracked int64; added as 0 when the
checkpoint lacks them, as timm's often do).

Without --arch the C loader infers the architecture from the tensor shapes,
assuming torchvision's placement of the stride (on the 3x3 of bottlenecks,
"v1.5", which timm's ResNets use too); pass --arch resnet50-v1 etc. for the
original placement, which shapes cannot show. The option-A shortcut (no
downsample tensors) is detected. Metadata written: mean/std/input_size (the
ImageNet defaults unless given), and arch, classes, in_channels, shortcut with
--arch, class_names with --class-names (one name a line).
"""
import argparse
import json
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


def state_dict_of(obj, path):
    """The state_dict inside whatever torch.load returned."""
    for _ in range(3):
        if hasattr(obj, "state_dict") and callable(obj.state_dict):
            obj = obj.state_dict()
        elif isinstance(obj, dict) and "state_dict" in obj:
            obj = obj["state_dict"]
        elif isinstance(obj, dict) and "model" in obj:
            obj = obj["model"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: no state_dict of tensors found (looked under 'state_dict' and 'model')")
    return obj


def convert(sd, path):
    """Strips prefixes, casts to float32, adds missing num_batches_tracked; checks the names."""
    out = {}
    for k, v in sd.items():
        k = k[len("module."):] if k.startswith("module.") else k
        out[k] = v.to(torch.int64) if k.endswith("num_batches_tracked") else v.to(torch.float32)
    for need in ("conv1.weight", "fc.weight", "layer1.0.conv1.weight"):
        if need not in out:
            raise ValueError(f"{path}: no tensor {need}: not a torchvision-style ResNet "
                             f"(found e.g. {', '.join(list(out)[:4])})")
    full = {}
    for k, v in out.items():
        full[k] = v
        if k.endswith(".running_var"):
            nbt = k[:-len("running_var")] + "num_batches_tracked"
            if nbt not in out:
                full[nbt] = torch.zeros((), dtype=torch.int64)
    return full


def metadata(sd, args):
    """The __metadata__ the C loader reads."""
    mean, std = args.mean.split(","), args.std.split(",")
    if len(mean) != len(std) or not re.fullmatch(r"\d+x\d+", args.input_size):
        raise ValueError("--mean and --std need as many values; --input-size is HxW")
    meta = {"mean": args.mean, "std": args.std, "input_size": args.input_size}
    if args.arch:
        stages = sorted({int(m.group(1)) for k in sd for m in [re.match(r"layer(\d+)\.", k)] if m})
        option_a = any(f"layer{s}.0.downsample.0.weight" not in sd for s in stages[1:])
        meta.update(arch=args.arch, classes=sd["fc.weight"].shape[0], in_channels=sd["conv1.weight"].shape[1],
                    shortcut="A" if option_a else "B")
    if args.class_names:
        with open(args.class_names) as f:
            names = [line.strip() for line in f if line.strip()]
        if len(names) != sd["fc.weight"].shape[0]:
            raise ValueError(f"{args.class_names}: {len(names)} names for {sd['fc.weight'].shape[0]} classes")
        meta["class_names"] = json.dumps(names)
    return meta


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("input", help="the .pth checkpoint")
    p.add_argument("output", help="the .safetensors model file to write")
    p.add_argument("--arch", help="architecture name (resnet50-v1, resnet20, ...) when shapes cannot tell")
    p.add_argument("--input-size", default="224x224", help="preferred input size HxW (default 224x224)")
    p.add_argument("--mean", default="0.485,0.456,0.406", help="normalization mean per channel")
    p.add_argument("--std", default="0.229,0.224,0.225", help="normalization std per channel")
    p.add_argument("--class-names", help="text file with one class name a line")
    args = p.parse_args()
    try:
        sd = convert(state_dict_of(torch.load(args.input, map_location="cpu"), args.input), args.input)
        safetensors_io.save(args.output, sd, metadata(sd, args))
    except (OSError, ValueError, RuntimeError) as e:
        sys.exit(f"pth_to_safetensors: error: {e}")
    print(f"wrote {args.output}: {len(sd)} tensors, {sum(t.numel() for t in sd.values() if t.is_floating_point())} "
          f"parameters and statistics")


if __name__ == "__main__":
    main()
