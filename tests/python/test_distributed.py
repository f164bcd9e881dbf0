"""Data-parallel training from Python: the same options as the command line, the same weights as
one process."""
import json
import os

import numpy as np
import pytest

import histocnn
from conftest import load_convert, run_cli


def common_options(data, out):
    # Nothing that differs between ranks but the part of each batch they compute.
    return dict(data_dir=str(data), output_dir=str(out), backbone="simple_cnn", weights="", image_size=32,
                hidden1=32, hidden2=16, dropout=0.0, epochs=2, batch_size=32, restore_best=False,
                stain_shift=0.0, tensorboard=False, threads=1, workers=1, progress=False)


def test_distributed_options_are_run_options(cli):
    defaults = histocnn.option_defaults()
    assert defaults["nproc"] == 1
    assert defaults["dist_backend"] == "auto"
    assert defaults["dist_timeout"] == 1800
    help_text = run_cli(cli, "train", "--help").stdout
    assert "--nproc" in help_text and "--dist-backend" in help_text and "--dist-timeout" in help_text
    with pytest.raises(ValueError, match="dist_backend"):
        histocnn.Trainer(dist_backend="mpi")


def test_trainer_with_two_processes_ends_with_the_weights_of_one(synthetic_data, tmp_path, monkeypatch):
    convert = load_convert()
    one = histocnn.Trainer(name="one", **common_options(synthetic_data, tmp_path))
    h1 = one.fit()
    # Without HISTOCNN_CLI the workers are `python -m histocnn train ...` of this interpreter.
    monkeypatch.delenv("HISTOCNN_CLI", raising=False)
    two = histocnn.Trainer(name="two", nproc=2, **common_options(synthetic_data, tmp_path))
    h2 = two.fit()
    assert two.run_dir == str(tmp_path / "two")
    assert len(h2) == len(h1) == 2
    for a, b in zip(h1, h2):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["val_auc"] == pytest.approx(a["val_auc"], abs=1e-6)
    w1 = convert.load_safetensors(str(tmp_path / "one" / "model" / "1" / "model.safetensors"))
    w2 = convert.load_safetensors(str(tmp_path / "two" / "model" / "1" / "model.safetensors"))
    assert w1.keys() == w2.keys()
    worst = max(float(np.abs(w1[k].astype(np.float64) - w2[k].astype(np.float64)).max()) for k in w1)
    assert worst <= 1e-5
    # The launcher read the run folder back: the same test metrics as the single process.
    assert two.result.test.roc_auc == pytest.approx(one.result.test.roc_auc, abs=1e-6)
    assert json.loads((tmp_path / "two" / "options.json").read_text())["trainer"]["nproc"] == 2
