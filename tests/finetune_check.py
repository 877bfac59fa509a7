"""Checks what fine-tuning's frozen phase may change: given the pretrained
file and the checkpoint after a few frozen steps, every convolution weight must
be unchanged, the batchnorm parameters and the new head must have moved.
Usage: finetune_check.py PRETRAINED.safetensors AFTER.safetensors"""
import sys

import torch

import st

pre, _ = st.load(sys.argv[1])
post, _ = st.load(sys.argv[2])
pass_, fail = 0, 0


def check(what, cond):
    global pass_, fail
    print(("ok " if cond else "FAIL ") + what)
    pass_, fail = pass_ + bool(cond), fail + (not cond)


convs = [k for k in post if k.endswith(".weight") and post[k].ndim == 4]
bns = [k for k in post if (k.endswith(".weight") or k.endswith(".bias")) and post[k].ndim == 1 and not k.startswith("fc.")]
check(f"{len(convs)} frozen conv weights unchanged", all(torch.equal(pre[k], post[k]) for k in convs))
check("batchnorm parameters trained", any(not torch.equal(pre[k], post[k]) for k in bns))
check("new head with 3 classes", post["fc.weight"].shape[0] == 3 and pre["fc.weight"].shape[0] == 5)
print(f"{pass_} passed, {fail} failed")
sys.exit(fail != 0)
