"""histocnn.io against independent readers: numpy on the raw safetensors layout, PIL for images."""
import json
import struct

import numpy as np
import pytest

import histocnn


def numpy_safetensors_reader(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    dtypes = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32,
              "U8": np.uint8, "BOOL": np.bool_, "I8": np.int8, "I16": np.int16}
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return out, meta


def test_safetensors_round_trip_matches_an_independent_reader(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {"w": rng.standard_normal((3, 4)).astype(np.float32), "idx": np.arange(5, dtype=np.int64),
               "half": rng.standard_normal(7).astype(np.float16), "mask": np.array([True, False]),
               "scalar": np.array(7, dtype=np.int64), "empty": np.zeros((0, 3), dtype=np.float32)}
    path = tmp_path / "t.safetensors"
    histocnn.io.save_safetensors(str(path), tensors, {"note": "test"})
    independent, meta = numpy_safetensors_reader(path)
    assert meta == {"note": "test"}
    back, meta2 = histocnn.io.load_safetensors(str(path))
    assert meta2 == {"note": "test"}
    for name, value in tensors.items():
        np.testing.assert_array_equal(independent[name], value)
        np.testing.assert_array_equal(back[name], value)
        assert back[name].dtype == value.dtype and back[name].shape == value.shape


def test_malformed_files_raise_with_the_file_name(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", 10) + b'{"a": 1}  ')
    with pytest.raises(ValueError, match="bad.safetensors"):
        histocnn.io.load_safetensors(str(bad))
    with pytest.raises(ValueError, match="float128|dtype"):
        histocnn.io.save_safetensors(str(tmp_path / "x.safetensors"), {"c": np.zeros(2, dtype=np.complex64)})


def test_read_image_agrees_with_pil_and_rejects_truncated_files(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (50, 42, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "p.png")
    np.testing.assert_array_equal(histocnn.io.read_image(str(tmp_path / "p.png")), pixels)
    data = (tmp_path / "p.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    # The library's error rule (core/error.h): bad content is bad input, std::invalid_argument,
    # ValueError here; a file that does not exist is histocnn::NotFoundError, FileNotFoundError.
    with pytest.raises(ValueError, match="cut.png.*truncated"):
        histocnn.io.read_image(str(tmp_path / "cut.png"))
    with pytest.raises(FileNotFoundError, match="missing.png"):
        histocnn.io.read_image(str(tmp_path / "missing.png"))
