"""Grad-CAM on a layer named by module path: `histocnn explain --layer/--list-layers` and
Predictor.explain(layer=...)/explain_layers() give the same layers and the same maps."""
import numpy as np
import pytest

from conftest import run_cli


def listed_layers(cli, model):
    """{name: (channels, height, width)} and the default, from `histocnn explain --list-layers`."""
    lines = run_cli(cli, "explain", "--model", model, "--list-layers").stdout.splitlines()
    assert lines[0].split()[0] == "layer"
    layers, default = {}, None
    for line in lines[1:]:
        name, c, _, h, _, w, *rest = line.split()
        layers[name] = (int(c), int(h), int(w))
        if rest == ["(default)"]:
            default = name
    return layers, default


def test_layers_listed_alike_and_a_named_layer_maps_at_its_resolution(cli, serving_runs, serving_patch, tmp_path):
    import histocnn
    model = serving_runs[0] / "model"
    patch = serving_patch[0]
    predictor = histocnn.Predictor(model)
    layers = predictor.explain_layers()
    assert list(layers) == list(listed_layers(cli, model)[0])
    assert layers == listed_layers(cli, model)[0]
    assert listed_layers(cli, model)[1] == predictor.default_layer == list(layers)[-1] == "features"
    size = predictor.image_size
    # simple_cnn: 3x3 convolutions keep the size, three 2x2 pools halve it.
    assert layers["features.0"] == (32, size, size)
    assert layers["features.4"][1:] == (size // 2, size // 2)
    assert layers["features"][1:] == (size // 8, size // 8)

    by_default = predictor.explain([str(patch)])
    assert np.allclose(predictor.explain([str(patch)], layer="features"), by_default, atol=1e-6)
    raw = predictor.explain([str(patch)], layer="features.4", upsample=False)
    assert raw.shape == (1,) + layers["features.4"][1:]
    assert raw.max() == pytest.approx(1.0) and raw.min() >= 0
    full = predictor.explain([str(patch)], layer="features.4")
    assert full.shape == (1, size, size)
    assert not np.allclose(full, by_default, atol=1e-2)

    out = tmp_path / "cams"
    run_cli(cli, "explain", "--model", model, patch, "--out", out, "--layer", "features.4", "--method", "gradcam++")
    written = np.load(out / f"{patch.stem}_cam.npy")
    assert np.allclose(written, predictor.explain([str(patch)], method="gradcam++", layer="features.4")[0], atol=1e-5)


def test_a_bad_layer_name_lists_close_names(cli, serving_runs, serving_patch):
    import histocnn
    model = serving_runs[0] / "model"
    bad = run_cli(cli, "explain", "--model", model, serving_patch[0], "--layer", "feature.4", check=False)
    assert bad.returncode != 0
    assert "no layer 'feature.4'" in bad.stderr and "features.4" in bad.stderr, bad.stderr
    with pytest.raises(ValueError, match=r"close names: features\.4"):
        histocnn.Predictor(model).explain([str(serving_patch[0])], layer="feature.4")
    missing = run_cli(cli, "explain", "--model", model, check=False)
    assert missing.returncode != 0 and "--list-layers" in missing.stderr
