"""Keras Applications .h5 weights load into histocnn's backbones.

The fixtures are written here with h5py in the layout Keras uses (root attribute layer_names,
per layer a group with weight_names, kernels as [kh, kw, in, out]), under Keras Applications'
layer names, from torchvision's weights where torchvision has the architecture (VGG16,
DenseNet-121): histocnn must then give torchvision's features. The Keras names and transposes are
spelled out here independently of the C++ mapping.

Xception, InceptionResNetV2 and NASNetMobile have no torchvision twin: their reference is the
Keras graph itself, run by TensorFlow.js' Keras implementation (tools/keras_oracle), which wrote
the layer and weight list of each model and its output for formula-generated weights and input to
tests/data/keras_oracle. Here the same weights are regenerated from the formula into a Keras .h5 file
in that layer order, loaded by histocnn, and its features must be TensorFlow.js' features.
"""
import json
import pathlib

import numpy as np
import pytest

from conftest import load_convert, randomise_batchnorm, run_cli

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
h5py = pytest.importorskip("h5py")

convert = load_convert()


def write_keras_h5(path, layers):
    """layers: [(keras layer name, [(weight name, numpy array in Keras layout), ...]), ...]."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([name.encode() for name, _ in layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for name, weights in layers:
            g = f.create_group(name)
            names = [f"{name}/{w}:0".encode() for w, _ in weights]
            g.attrs["weight_names"] = np.array(names, dtype="S64") if names else np.array([], dtype="S1")
            for w, value in weights:
                g.create_dataset(f"{name}/{w}:0", data=np.asarray(value, dtype=np.float32))


def conv(m):
    out = [("kernel", m.weight.detach().permute(2, 3, 1, 0).numpy())]
    return out + ([("bias", m.bias.detach().numpy())] if m.bias is not None else [])


def bn(m):
    return [("gamma", m.weight.detach().numpy()), ("beta", m.bias.detach().numpy()),
            ("moving_mean", m.running_mean.numpy()), ("moving_variance", m.running_var.numpy())]


def features_from_h5(cli, tmp_path, backbone, h5, x):
    inputs, output = tmp_path / "x.safetensors", tmp_path / "y.safetensors"
    convert.save_safetensors(inputs, {"input": x})
    run_cli(cli, "models", "features", "--backbone", backbone, "--weights", h5, "--input", inputs, "--output", output)
    return convert.load_safetensors(output)["features"]


def assert_close(got, ref):
    assert got.shape == ref.shape
    assert float(np.abs(got - ref).max()) <= 1e-4 * max(1.0, float(np.abs(ref).max()))


def test_keras_vgg16_h5_gives_torchvision_features(tmp_path, cli):
    torch.manual_seed(3)
    model = torchvision.models.vgg16().eval()
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    per_block = [2, 2, 3, 3, 3]
    layers, k = [("input_1", [])], 0
    for block, n in enumerate(per_block, 1):
        for c in range(1, n + 1):
            weights = conv(convs[k])
            if k == 0:  # Keras' VGG16 reads BGR: its first kernel has the input channels reversed
                weights[0] = ("kernel", weights[0][1][:, :, ::-1, :])
            layers.append((f"block{block}_conv{c}", weights))
            k += 1
        layers.append((f"block{block}_pool", []))
    # A full-model file also has the ImageNet top, which is ignored.
    layers += [("flatten", []), ("fc1", [("kernel", np.zeros((25088, 8))), ("bias", np.zeros(8))]),
               ("predictions", [("kernel", np.zeros((8, 2))), ("bias", np.zeros(2))])]
    h5 = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    write_keras_h5(h5, layers)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model.features(x).numpy()
    assert_close(features_from_h5(cli, tmp_path, "vgg16", h5, x), ref)


def test_keras_densenet121_h5_gives_torchvision_features(tmp_path, cli):
    torch.manual_seed(4)
    model = torchvision.models.densenet121().eval()
    randomise_batchnorm(model, 11)
    f = model.features
    layers = [("input_1", []), ("zero_padding2d", []), ("conv1/conv", conv(f.conv0)), ("conv1/bn", bn(f.norm0)),
              ("conv1/relu", [])]
    for b in range(1, 5):
        block = getattr(f, f"denseblock{b}")
        for i, layer in enumerate(block.values(), 1):
            name = f"conv{b + 1}_block{i}"
            layers += [(f"{name}_0_bn", bn(layer.norm1)), (f"{name}_1_conv", conv(layer.conv1)),
                       (f"{name}_1_bn", bn(layer.norm2)), (f"{name}_2_conv", conv(layer.conv2))]
        if b < 4:
            t = getattr(f, f"transition{b}")
            layers += [(f"pool{b + 1}_bn", bn(t.norm)), (f"pool{b + 1}_conv", conv(t.conv))]
    layers.append(("bn", bn(f.norm5)))
    h5 = tmp_path / "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"
    write_keras_h5(h5, layers)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = torch.relu(f(x)).numpy()
    assert_close(features_from_h5(cli, tmp_path, "densenet121", h5, x), ref)


def test_keras_resnet50v2_h5_loads_every_weight(tmp_path, cli):
    """ResNet50V2 has no torchvision twin: random weights under Keras' names and shapes must load
    completely (strict) and give the same features as the same tensors under histocnn's names."""
    rng = np.random.default_rng(5)
    layers, renamed = [("conv1_conv", [("kernel", rng.normal(0, 0.1, (7, 7, 3, 64))),
                                       ("bias", rng.normal(0, 0.1, 64))])], {}

    def add(keras, ours, shapes):
        weights = []
        for (w, shape), o in zip(shapes, ours):
            value = rng.normal(0, 0.1, shape) if w != "moving_variance" else rng.uniform(0.5, 1.5, shape)
            weights.append((w, value))
            renamed[o] = np.transpose(value, (3, 2, 0, 1)) if value.ndim == 4 else value
        layers.append((keras, weights))

    def bn_shapes(c):
        return [("gamma", (c,)), ("beta", (c,)), ("moving_mean", (c,)), ("moving_variance", (c,))]

    renamed["conv1.weight"] = np.transpose(layers[0][1][0][1], (3, 2, 0, 1))
    renamed["conv1.bias"] = layers[0][1][1][1]
    channels = 64
    for s, blocks in enumerate([3, 4, 6, 3], 2):
        filters = 64 * 2 ** (s - 2)
        for b in range(1, blocks + 1):
            k, ours = f"conv{s}_block{b}", f"layer{s - 1}.{b - 1}"
            bn_names = [f"{ours}.%s.{p}" for p in ("weight", "bias", "running_mean", "running_var")]
            add(f"{k}_preact_bn", [n % "preact" for n in bn_names], bn_shapes(channels))
            if b == 1:
                add(f"{k}_0_conv", [f"{ours}.downsample.weight", f"{ours}.downsample.bias"],
                    [("kernel", (1, 1, channels, 4 * filters)), ("bias", (4 * filters,))])
            add(f"{k}_1_conv", [f"{ours}.conv1.weight"], [("kernel", (1, 1, channels, filters))])
            add(f"{k}_1_bn", [n % "bn1" for n in bn_names], bn_shapes(filters))
            add(f"{k}_2_conv", [f"{ours}.conv2.weight"], [("kernel", (3, 3, filters, filters))])
            add(f"{k}_2_bn", [n % "bn2" for n in bn_names], bn_shapes(filters))
            add(f"{k}_3_conv", [f"{ours}.conv3.weight", f"{ours}.conv3.bias"],
                [("kernel", (1, 1, filters, 4 * filters)), ("bias", (4 * filters,))])
            channels = 4 * filters
    add("post_bn", [f"post_bn.{p}" for p in ("weight", "bias", "running_mean", "running_var")], bn_shapes(2048))
    h5, st = tmp_path / "resnet50v2_notop.h5", tmp_path / "resnet50v2.safetensors"
    write_keras_h5(h5, layers)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in renamed.items()}
    for k in [k for k in tensors if k.endswith(".running_mean")]:
        tensors[k.replace("running_mean", "num_batches_tracked")] = torch.tensor(0, dtype=torch.int64)
    convert.save_safetensors(st, tensors)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    from_h5 = features_from_h5(cli, tmp_path, "resnet50v2", h5, x)
    inputs, output = tmp_path / "x2.safetensors", tmp_path / "y2.safetensors"
    convert.save_safetensors(inputs, {"input": x})
    run_cli(cli, "models", "features", "--backbone", "resnet50v2", "--weights", st, "--input", inputs,
            "--output", output)
    assert_close(from_h5, convert.load_safetensors(output)["features"])


def test_bad_keras_files_are_refused_by_name(tmp_path, cli):
    h5 = tmp_path / "vgg16_partial.h5"
    write_keras_h5(h5, [("block1_conv1", [("kernel", np.zeros((3, 3, 3, 64))), ("bias", np.zeros(64))]),
                        ("mystery_layer", [("kernel", np.zeros((1, 1, 3, 3)))])])
    x = tmp_path / "x.safetensors"
    convert.save_safetensors(x, {"input": torch.zeros(1, 3, 32, 32)})
    bad = run_cli(cli, "models", "features", "--backbone", "vgg16", "--weights", h5, "--input", x,
                  "--output", tmp_path / "y.safetensors", check=False)
    assert bad.returncode != 0
    assert "vgg16_partial.h5" in bad.stderr and "keras:mystery_layer/kernel" in bad.stderr
    assert "features.2.weight" in bad.stderr  # missing
    not_keras = tmp_path / "plain.h5"
    with h5py.File(not_keras, "w") as f:
        f.create_dataset("w", data=np.zeros(3))
    bad = run_cli(cli, "models", "features", "--backbone", "vgg16", "--weights", not_keras, "--input", x,
                  "--output", tmp_path / "y.safetensors", check=False)
    assert bad.returncode != 0 and "layer_names" in bad.stderr and "plain.h5" in bad.stderr
    bad = run_cli(cli, "models", "features", "--backbone", "mobilenet_v2", "--weights", h5, "--input", x,
                  "--output", tmp_path / "y.safetensors", check=False)
    assert bad.returncode != 0 and "mobilenet_v2" in bad.stderr and "xception" in bad.stderr


ORACLE = pathlib.Path(__file__).resolve().parents[1] / "data" / "keras_oracle"
ORACLE_CASES = [(m["model"], i) for m in (json.loads(p.read_text()) for p in sorted(ORACLE.glob("*.json")))
                if "cases" in m for i in range(len(m["cases"]))]


def oracle_uniform(name, count):
    """tools/keras_oracle's formula: u in [-1, 1) per element, from the FNV-1a hash of `name`."""
    seed = 0x811C9DC5
    for byte in name.encode():
        seed = ((seed ^ byte) * 0x01000193) & 0xFFFFFFFF
    with np.errstate(over="ignore"):
        x = np.uint32(seed) + np.arange(count, dtype=np.uint32) * np.uint32(0x9E3779B1)
        x ^= x >> np.uint32(16)
        x *= np.uint32(0x85EBCA6B)
        x ^= x >> np.uint32(13)
        x *= np.uint32(0xC2B2AE35)
        x ^= x >> np.uint32(16)
    return x.astype(np.float64) / 4294967296 * 2 - 1


def oracle_weight(name, shape):
    """The value tools/keras_oracle gave the weight "<layer>/<weight>" (or the input, "input")."""
    u = oracle_uniform(name, int(np.prod(shape))).reshape(shape)
    weight = name.rsplit("/", 1)[-1]
    if weight in ("kernel", "pointwise_kernel"):
        value = u * np.sqrt(6 / np.prod(shape[:-1]))
    elif weight == "depthwise_kernel":
        value = u * np.sqrt(6 / (shape[0] * shape[1]))
    else:
        value = {"bias": 0.1 * u, "gamma": 1 + 0.2 * u, "beta": 0.1 * u, "moving_mean": 0.1 * u,
                 "moving_variance": 1 + 0.5 * u, "input": u}[weight]
    return value.astype(np.float32)


def test_oracle_formula_matches_the_values_tools_keras_oracle_used():
    for name, recorded in json.loads((ORACLE / "formula_check.json").read_text()).items():
        got = oracle_weight(name, recorded["shape"]).reshape(-1)[:len(recorded["first"])]
        assert got.tolist() == [float(np.float32(v)) for v in recorded["first"]], name


def write_oracle_h5(path, manifest, source=lambda layer: layer):
    """The formula's weights in a Keras .h5 file, in the manifest's layer order; layer L gets the
    values the formula gives layer source(L)."""
    write_keras_h5(path, [(layer["name"], [(w["name"], oracle_weight(f"{source(layer['name'])}/{w['name']}", w["shape"]))
                                           for w in layer["weights"]]) for layer in manifest["layers"]])


def oracle_case(model, case):
    """(input NCHW, reference features NCHW) of one recorded case."""
    spec = json.loads((ORACLE / f"{model}.json").read_text())["cases"][case]
    x = oracle_weight("input", spec["input_shape"])  # [N, H, W, 3]
    ref = np.fromfile(ORACLE / spec["features"], dtype="<f4").reshape(spec["output_shape"])
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), ref.transpose(0, 3, 1, 2)


@pytest.fixture(scope="module")
def oracle_h5(tmp_path_factory):
    """model -> (manifest, Keras .h5 of the formula's weights in the manifest's layer order), written once."""
    files = {}

    def get(model):
        if model not in files:
            manifest = json.loads((ORACLE / f"{model}.json").read_text())
            h5 = tmp_path_factory.mktemp("keras") / f"{model}_notop.h5"
            write_oracle_h5(h5, manifest)
            files[model] = (manifest, h5)
        return files[model]
    return get


@pytest.mark.parametrize("model,case", ORACLE_CASES)
def test_keras_h5_gives_the_keras_graphs_features(tmp_path, cli, oracle_h5, model, case):
    _, h5 = oracle_h5(model)
    x, ref = oracle_case(model, case)
    assert_close(features_from_h5(cli, tmp_path, model, h5, x), ref)


def test_the_oracle_tells_apart_two_same_shaped_unnamed_layers(tmp_path, cli):
    """conv2d_13 and conv2d_14 (block35_1's first two 1x1 320->32 convolutions) have the same shape;
    a file with their weights swapped must move the features far beyond the tolerance."""
    manifest = json.loads((ORACLE / "inception_resnet_v2.json").read_text())
    swapped = {"conv2d_13": "conv2d_14", "conv2d_14": "conv2d_13"}
    h5 = tmp_path / "swapped.h5"
    write_oracle_h5(h5, manifest, lambda layer: swapped.get(layer, layer))
    x, ref = oracle_case("inception_resnet_v2", 0)
    got = features_from_h5(cli, tmp_path, "inception_resnet_v2", h5, x)
    assert float(np.abs(got - ref).max()) > 10 * 1e-4 * max(1.0, float(np.abs(ref).max()))
