"""`histocnn models summary` and histocnn.models.summary: Keras' model.summary() for a backbone + head."""
import re

import pytest

from conftest import run_cli


def test_cli_summary_of_the_study_model_prints_keras_totals(cli):
    out = run_cli(cli, "models", "summary", "--backbone", "vgg16", "--head", "dense", "--batch-norm",
                  "--unfreeze-last", "4").stdout
    assert "Layer (type)" in out and "Output Shape" in out and "Param #" in out
    assert "Total params: 15,043,778\n" in out
    assert "Trainable params: 7,408,258\n" in out
    assert "Non-trainable params: 7,635,520\n" in out
    # The last four backbone layers train: block5_conv1..3 and the last pool; block4_conv3 does not.
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^ (\S+) \(\w+\).*$", out, re.M)}
    for name in ("features.24", "features.26", "features.28"):
        assert rows[name].rstrip().endswith("Y"), rows[name]
    assert rows["features.21"].rstrip().endswith("N")
    assert "(None, 7, 7, 512)" in rows["max_pooling2d_4"]


def test_cli_summary_sizes_and_errors(cli):
    out = run_cli(cli, "models", "summary", "--backbone", "simple_cnn", "--head", "lstm", "--image-size", "48",
                  "--lstm-units", "32").stdout
    assert "head.lstm (LSTM)" in out and "(None, 36, 256)" in out
    bad = run_cli(cli, "models", "summary", "--backbone", "vgg16", "--unfreeze-last", "19", check=False)
    assert bad.returncode != 0 and "unfreeze_last is 19" in bad.stderr and "18 layers" in bad.stderr
    bad = run_cli(cli, "models", "summary", "--backbone", "vgg16", "--head", "gru", check=False)
    assert bad.returncode != 0 and "--head" in bad.stderr
    bad = run_cli(cli, "models", "summary", "--backbone", "vgg16", "--image-size", "0", check=False)
    assert bad.returncode != 0 and "--image-size" in bad.stderr


def test_python_summary_matches_the_cli():
    histocnn = pytest.importorskip("histocnn")
    s = histocnn.models.summary("vgg16", batch_norm=True, unfreeze_last=4)
    assert (s["total_params"], s["trainable_params"], s["non_trainable_params"]) == (15043778, 7408258, 7635520)
    assert s["layers"][0]["type"] == "InputLayer"
    assert sum(layer["params"] for layer in s["layers"]) == s["total_params"]
    assert [layer["name"] for layer in s["layers"] if layer["trainable_params"] and layer["name"].startswith("f")] == \
        ["features.24", "features.26", "features.28"]
    assert "Total params: 15,043,778" in s["text"]
    with pytest.raises(ValueError, match="unfreeze_last"):
        histocnn.models.summary("vgg16", unfreeze_last=19)
