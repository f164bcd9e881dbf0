"""histocnn's C++ backbones against torchvision's: the same random weights and input give the same
features. Fixtures are generated here, in a temporary folder, from torchvision itself.

Each torchvision model is built with a fixed seed; its BatchNorm statistics and affine parameters
are then randomised (torchvision initialises them to the identity, which would hide a BatchNorm
that is skipped or mis-wired). The full state dict, top included, goes to a safetensors file that
`histocnn models features` loads (ignoring the top) and runs on the same input.
"""

import numpy as np
import pytest

from conftest import load_convert, randomise_batchnorm, run_cli

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

convert = load_convert()


def _features(name, model):
    """torchvision's feature extractor for `name`: what histocnn's forward_features computes."""
    if name.startswith("resnet"):
        return torch.nn.Sequential(*list(model.children())[:-2])
    if name.startswith("densenet"):
        return torch.nn.Sequential(model.features, torch.nn.ReLU())  # torchvision's forward applies it
    return model.features


ARCHITECTURES = ["resnet18", "resnet50", "vgg16", "densenet121", "densenet201", "squeezenet1_1",
                 "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"]


@pytest.mark.parametrize("size", [67])
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_features_match_torchvision(name, size, tmp_path, cli):
    torch.manual_seed(1234)
    model = getattr(torchvision.models, name)()
    generator = torch.Generator().manual_seed(99)
    randomise_batchnorm(model, 99)
    model.eval()
    # 67 px: odd sizes exercise ceil-mode pooling and padding at every stride.
    x = torch.randn(2, 3, size, size, generator=generator)
    with torch.no_grad():
        expected = _features(name, model)(x)

    weights, inputs, output = tmp_path / "w.safetensors", tmp_path / "x.safetensors", tmp_path / "y.safetensors"
    convert.save_safetensors(weights, model.state_dict())
    convert.save_safetensors(inputs, {"input": x})
    run_cli(cli, "models", "features", "--backbone", name, "--weights", weights, "--input", inputs,
            "--output", output, "--threads", 2)
    got = convert.load_safetensors(output)

    ref = expected.numpy()
    assert got["features"].shape == ref.shape
    # Features of random deep nets reach magnitudes of 10-100: compare relative to the largest.
    scale = max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(got["features"] - ref).max())
    # docs/backbones.md quotes these lines (pytest -s shows them).
    print(f"\nparity {name} {size}px: max |diff| {err:.2g}, largest |feature| {float(np.abs(ref).max()):.3g}, "
          f"tolerance {1e-4 * scale:.2g}")
    assert err <= 1e-4 * scale, f"{name}: max |diff| {err:.3g} at feature scale {scale:.3g}"
    np.testing.assert_allclose(got["pooled"], ref.mean(axis=(2, 3)), rtol=0, atol=1e-4 * scale)


def test_convert_round_trips_a_torchvision_checkpoint(tmp_path):
    model = torchvision.models.squeezenet1_1()
    pth = tmp_path / "squeezenet1_1.pth"
    torch.save(model.state_dict(), pth)
    out = tmp_path / "squeezenet1_1.safetensors"
    n = convert.convert_torchvision(pth, out, drop_prefixes=("classifier.",))
    loaded = convert.load_safetensors(out)
    assert n == len(loaded) == 50
    assert not any(k.startswith("classifier.") for k in loaded)
    for key, value in loaded.items():
        np.testing.assert_array_equal(value, model.state_dict()[key].numpy())


def test_a_torchscript_backbone_gives_torchvision_features_and_trains(tmp_path, cli):
    """Bring your own backbone: torchvision's ResNet-18 trunk scripted and saved by PyTorch runs in
    histocnn with the same outputs, and `histocnn train` fine-tunes it."""
    torch.manual_seed(7)
    model = torchvision.models.resnet18()
    randomise_batchnorm(model, 3)
    trunk = _features("resnet18", model).eval()
    script = tmp_path / "resnet18_trunk.pt"
    torch.jit.script(trunk).save(str(script))
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = trunk(x).numpy()
    inputs, output = tmp_path / "x.safetensors", tmp_path / "y.safetensors"
    convert.save_safetensors(inputs, {"input": x})
    run_cli(cli, "models", "features", "--backbone", f"torchscript:{script}", "--input", inputs, "--output", output)
    got = convert.load_safetensors(output)["features"]
    assert got.shape == ref.shape == (2, 512, 2, 2)
    assert float(np.abs(got - ref).max()) <= 1e-4 * max(1.0, float(np.abs(ref).max()))

    data = tmp_path / "patches"
    run_cli(cli, "data", "synth", data, "--patients", 6, "--per-patient", 20)
    run_cli(cli, "train", "--data", data, "--backbone", f"torchscript:{script}", "--unfreeze",
            "--image-size", 32, "--epochs", 1, "--hidden1", 16, "--hidden2", 8, "--out", tmp_path / "runs",
            "--no-tensorboard")
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("torchscript-resnet18_trunk-dense-")
    evaluated = run_cli(cli, "evaluate", "--model", runs[0] / "model", "--manifest", runs[0] / "manifest.csv",
                        "--split", "test")
    assert "accuracy" in evaluated.stdout
