"""Turn PyTorch checkpoints into safetensors files that histocnn loads, and read/write safetensors
with nothing but numpy (no network, no pickle on the reading side).

A torchvision ``.pth`` file (for example ``resnet50-11ad3fa6.pth`` from torchvision's model zoo,
fetched by you on a machine with network access) becomes a weights file for ``--weights``::

    python -m histocnn.convert resnet50-11ad3fa6.pth resnet50.safetensors
    # or, without building the package, straight from a source checkout:
    python3 python/histocnn/convert.py resnet50-11ad3fa6.pth resnet50.safetensors

    histocnn train --backbone resnet50 --weights resnet50.safetensors ...

The parameter names stay torchvision's, which are histocnn's; the ImageNet top (``fc.*``,
``classifier.*``) may stay in the file: histocnn ignores it when it loads a backbone. ``torch.load``
runs with ``weights_only=True`` where the installed torch supports it, because a ``.pth`` file is a
pickle and a pickle can run code.

The safetensors layout (https://github.com/huggingface/safetensors): an 8-byte little-endian header
length, a JSON header mapping names to dtype, shape and byte offsets, then the raw little-endian data.
"""
import argparse
import json
import struct
import sys

import numpy as np

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}


def _to_numpy(value):
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # a torch.Tensor, without importing torch here
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            raise ValueError("bfloat16 tensors are not supported by this writer; convert them to float32 first")
        return value.numpy()
    return np.asarray(value)


def save_safetensors(path, tensors, metadata=None):
    """Writes ``{name: array or torch.Tensor}`` to ``path`` as safetensors (names sorted)."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        # np.asarray keeps 0-d scalars 0-d (np.ascontiguousarray would make them [1]).
        array = np.asarray(_to_numpy(tensors[name]), order="C")
        if array.dtype not in _CODES:
            raise ValueError(f"tensor '{name}' has dtype {array.dtype}, which safetensors cannot hold here")
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _CODES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # keep the data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)


def load_safetensors(path):
    """Reads a safetensors file into ``{name: numpy array}`` (metadata is dropped)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"'{path}' is too short to be a safetensors file")
    (length,) = struct.unpack("<Q", raw[:8])
    if 8 + length > len(raw):
        raise ValueError(f"'{path}': header length {length} runs past the end of the file")
    header = json.loads(raw[8:8 + length])
    data = memoryview(raw)[8 + length:]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        dtype = np.dtype(_DTYPES[entry["dtype"]]).newbyteorder("<")
        out[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(entry["shape"]).copy()
    return out


def torchvision_state_dict(pth_path):
    """The state dict inside a ``.pth`` checkpoint: unwraps ``{"state_dict": ...}`` / ``{"model": ...}``
    and strips the ``module.`` prefix that DataParallel adds."""
    import torch

    try:
        obj = torch.load(pth_path, map_location="cpu", weights_only=True)
    except TypeError:  # torch < 1.13 has no weights_only
        obj = torch.load(pth_path, map_location="cpu")
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if hasattr(obj, "state_dict"):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise ValueError(f"'{pth_path}' holds a {type(obj).__name__}, not a state dict")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def convert_torchvision(pth_path, out_path, drop_prefixes=()):
    """Converts a torchvision ``.pth`` checkpoint to safetensors; returns the number of tensors written.
    Keys starting with any of ``drop_prefixes`` (e.g. ``"fc."``) are left out."""
    state = {k: v for k, v in torchvision_state_dict(pth_path).items()
             if not any(k.startswith(p) for p in drop_prefixes)}
    save_safetensors(out_path, state, metadata={"source": str(pth_path), "format": "pt"})
    return len(state)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Convert a torchvision .pth checkpoint to safetensors")
    parser.add_argument("pth", help="the .pth / .pt checkpoint (a state dict)")
    parser.add_argument("output", help="the .safetensors file to write")
    parser.add_argument("--drop", action="append", default=[], metavar="PREFIX",
                        help="leave out keys starting with PREFIX (repeatable), e.g. --drop fc.")
    args = parser.parse_args(argv)
    n = convert_torchvision(args.pth, args.output, tuple(args.drop))
    print(f"wrote {n} tensors to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
