"""Minimal safetensors reader and writer for the tests (no safetensors package needed).

The format: 8-byte little-endian header length, a JSON header mapping names to
{dtype, shape, data_offsets}, then the raw little-endian bytes.
"""
import json
import struct

import numpy as np
import torch

_DT = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "F16": np.float16, "U8": np.uint8}
_NAME = {np.dtype(v): k for k, v in _DT.items()}


def pack(entries, metadata=None):
    """The bytes of a safetensors file from (name, dtype name, shape, raw bytes) tuples, in order."""
    header, blobs, off = {}, [], 0
    for name, dt, shape, raw in entries:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def split(data):
    """(header dict, data section) of the bytes of a safetensors file."""
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def save(path, tensors, metadata=None):
    """Writes a dict of name -> torch.Tensor / numpy array as safetensors."""
    entries = []
    for name, t in tensors.items():
        a = t.detach().cpu().contiguous().numpy() if isinstance(t, torch.Tensor) else np.ascontiguousarray(t)
        entries.append((name, _NAME[a.dtype], a.shape, a.tobytes()))
    with open(path, "wb") as f:
        f.write(pack(entries, metadata))


def load(path):
    """Reads a safetensors file into (dict of name -> torch.Tensor, metadata)."""
    header, body = split(open(path, "rb").read())
    meta = header.pop("__metadata__", {})
    out = {}
    for name, d in header.items():
        a, b = d["data_offsets"]
        arr = np.frombuffer(body[a:b], dtype=_DT[d["dtype"]]).reshape(d["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out, meta
