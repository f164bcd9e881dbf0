"""The Python Trainer and the command-line tool run the same library code and agree."""
import json
import math
import os

import pytest

import histocnn
from conftest import run_cli


def test_trainer_fit_returns_history_and_writes_run(synthetic_data, tmp_path):
    trainer = histocnn.Trainer(data_dir=str(synthetic_data), backbone="simple_cnn", freeze_backbone=False,
                               image_size=50, epochs=2, hidden1=64, hidden2=32, optimizer="adam",
                               output_dir=str(tmp_path), name="py", progress=False, seed=7)
    history = trainer.fit()
    assert len(history) == 2
    assert [e["epoch"] for e in history] == [1, 2]
    assert all(math.isfinite(e["train_loss"]) for e in history)
    import csv
    from sklearn.metrics import roc_auc_score
    run = tmp_path / "py"
    # The test AUC is scikit-learn's on the run's own test predictions.
    with open(run / "predictions_test.csv") as f:
        stained = list(csv.DictReader(f))
    assert len({r["label"] for r in stained}) == 2
    oracle = roc_auc_score([int(r["label"]) for r in stained], [float(r["p_positive"]) for r in stained])
    assert trainer.result.test.roc_auc == pytest.approx(oracle, abs=1e-9)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["roc_auc"] == pytest.approx(oracle, abs=1e-9)
    assert (run / "model" / "1" / "model.safetensors").exists()

    # Robustness: the test patients restained (stain_shift 0.1 by default), scored by sklearn.
    with open(run / "predictions_test_stain_shift.csv") as f:
        shifted = list(csv.DictReader(f))
    assert [r["path"] for r in shifted] == [r["path"] for r in stained]
    assert [r["p_positive"] for r in shifted] != [r["p_positive"] for r in stained]
    auc = roc_auc_score([int(r["label"]) for r in shifted], [float(r["p_positive"]) for r in shifted])
    assert metrics["test_stain_shift"]["roc_auc"] == pytest.approx(auc, abs=1e-9)
    assert metrics["test_stain_shift"]["sigma"] == 0.1
    assert trainer.result.test_stain_shift.roc_auc == pytest.approx(auc, abs=1e-9)
    assert "restained" in (run / "report.txt").read_text()
    assert (run / "plots" / "stain_shift_examples.png").stat().st_size > 1000
    # A saved model evaluated later with the run's seed sees the same restained patients.
    again = histocnn.evaluate(str(run / "model"), manifest=str(run / "manifest.csv"), split="test",
                              stain_shift=0.1, seed=7)
    assert again.metrics.roc_auc == pytest.approx(auc, abs=1e-6)


def test_python_and_cli_give_the_same_numbers(synthetic_data, tmp_path, cli):
    trainer = histocnn.Trainer(data_dir=str(synthetic_data), backbone="simple_cnn", freeze_backbone=False,
                               image_size=50, epochs=1, hidden1=32, hidden2=16, seed=5, workers=2,
                               output_dir=str(tmp_path), name="py", progress=False)
    trainer.fit()
    run_cli(cli, "train", "--data", synthetic_data, "--unfreeze", "--out", tmp_path, "--name", "cli",
            "--backbone", "simple_cnn", "--image-size", 50, "--epochs", 1, "--hidden1", 32, "--hidden2", 16,
            "--seed", 5, "--workers", 2)
    assert (tmp_path / "cli" / "manifest.csv").read_text() == (tmp_path / "py" / "manifest.csv").read_text()
    py_metrics = json.loads((tmp_path / "py" / "metrics.json").read_text())
    cli_metrics = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert py_metrics["test"] == cli_metrics["test"]  # same code, same numbers


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError, match="learning_rat"):
        histocnn.Trainer(data_dir=".", learning_rat=0.1)


def test_errors_come_out_as_python_exceptions_with_the_cpp_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        histocnn.Trainer(data_dir=str(tmp_path / "does-not-exist"), progress=False).fit()
    with pytest.raises(ValueError, match="unknown backbone 'resnet9000'"):
        histocnn.models.count_parameters("resnet9000")
    # A bad choice is refused where it is given, naming the allowed values.
    with pytest.raises(ValueError, match="option 'optimizer' got \"sgdx\"; choose one of: rmsprop"):
        histocnn.Trainer(data_dir=str(tmp_path), optimizer="sgdx", progress=False)


def test_cli_reports_bad_input_clearly(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run_cli(cli, "data", "scan", tmp_path / "empty", check=False)
    assert proc.returncode != 0
    assert "empty" in proc.stderr and "error" in proc.stderr
    proc = run_cli(cli, "evaluate", "--model", tmp_path / "nope", "--data", tmp_path / "empty", check=False)
    assert proc.returncode != 0 and "error" in proc.stderr


def test_evaluate_matches_the_run(synthetic_data, tmp_path, cli):
    run_cli(cli, "train", "--data", synthetic_data, "--unfreeze", "--out", tmp_path, "--name", "r",
            "--backbone", "simple_cnn", "--image-size", 50, "--epochs", 1)
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    result = histocnn.evaluate(str(tmp_path / "r" / "model"), manifest=str(tmp_path / "r" / "manifest.csv"),
                               split="test")
    assert result.metrics.roc_auc == pytest.approx(metrics["test"]["roc_auc"], abs=1e-6)
    out = run_cli(cli, "evaluate", "--model", tmp_path / "r" / "model", "--manifest", tmp_path / "r" / "manifest.csv")
    assert "IDC-positive" in out.stdout and "ROC-AUC" in out.stdout


def test_package_reports_its_torch():
    import torch
    assert histocnn.torch_version().split(".")[:2] == torch.__version__.split(".")[:2]
    assert "mobilenet_v2" in histocnn.models.backbone_names()
    assert histocnn.models.count_parameters("mobilenet_v2") == 2223872


def test_python_m_histocnn_is_the_same_cli(cli, tmp_path):
    import subprocess
    import sys
    env = {**os.environ, "HISTOCNN_PROGRESS": "0"}
    via_python = subprocess.run([sys.executable, "-m", "histocnn", "models", "list"], capture_output=True, text=True,
                                env=env, timeout=120)
    via_cli = subprocess.run([cli, "models", "list"], capture_output=True, text=True, env=env, timeout=120)
    assert via_python.returncode == 0, via_python.stderr
    assert via_python.stdout == via_cli.stdout
    bad = subprocess.run([sys.executable, "-m", "histocnn", "data", "scan", str(tmp_path / "missing")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode != 0 and "missing" in bad.stderr


def test_every_option_name_reaches_the_cpp_options():
    """The Python keyword arguments are the C++ option names: each one changes RunOptions."""
    base = json.loads(histocnn.train.RunOptions().to_json())
    special = {"augment": "study", "optimizer": "adam", "schedule": "cosine", "class_weight": "balanced",
               "sampler": "balanced", "head": "lstm", "backbone": "simple_cnn", "device": "cpu",
               "threshold_method": "sensitivity", "normalisation": "inception", "weights": "w.safetensors",
               "mixed_precision": "bf16", "dist_backend": "gloo", "stain_normalise": "macenko",
               "stain_fit": "slide", "colour": "grey"}
    # How a run is shown and whether it waits for another process: not part of the recorded options.
    not_recorded = {"progress", "wait_for_lock"}
    fresh = histocnn.train.RunOptions()
    for name in histocnn.train.run_option_names():
        changed = False
        for value in ([special[name]] if name in special else [True, False, 3, 0.25, "x"]):
            o = histocnn.train.RunOptions()
            try:
                histocnn.train.set_run_option(o, name, json.dumps(value))
            except ValueError:
                continue
            if name in not_recorded:
                changed = changed or histocnn.train.get_run_option(o, name) != histocnn.train.get_run_option(fresh, name)
            else:
                changed = changed or json.loads(o.to_json()) != base
        assert changed, name


def test_trainer_keywords_and_defaults_are_the_cpp_options(cli):
    """Trainer's signature lists every C++ option with its default, and those defaults agree with
    what `histocnn train --help` prints (CLI11 formats the same struct fields independently)."""
    import inspect
    import re

    names = set(histocnn.train.run_option_names())
    params = inspect.signature(histocnn.Trainer).parameters
    assert set(params) == names | {"callbacks", "recipe"}
    defaults = histocnn.option_defaults()
    fresh = histocnn.train.RunOptions()
    for name in names - {"data_dir", "manifest", "progress"}:
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert params[name].default == defaults[name] == json.loads(histocnn.train.get_run_option(fresh, name)), name
    # A Trainer built with no options runs with exactly the defaults; one option changes one value.
    values = histocnn.Trainer(progress=False).option_values()
    assert values == {k: v for k, v in defaults.items() if k != "progress"}
    changed = histocnn.Trainer(progress=False, epochs=3, augment="study").option_values()
    assert {k for k in values if values[k] != changed[k]} == {"epochs", "augment"}

    help_text = run_cli(cli, "train", "--help").stdout
    checked = set()
    # Each option's first flag is its name with dashes; short aliases may follow it.
    for flag, value in re.findall(r"^\s+--([a-z0-9-]+)(?:,--[a-z0-9-]+)* [A-Z]+=(\S+)", help_text, re.M):
        name = flag.replace("-", "_")
        expected = defaults[name]
        if isinstance(expected, bool) or isinstance(expected, str):
            assert str(expected) == value, name
        else:
            assert float(value) == pytest.approx(expected), name
        checked.add(name)
    # Switches: a flag that turns something on defaults to off, and the other way round.
    for flag, name, default in [("--batch-norm", "batch_norm", False), ("--train-bn", "train_bn", False),
                                ("--tf-padding", "tf_padding", False), ("--split-by-patch", "split_by_patch", False),
                                ("--unfreeze ", "freeze_backbone", True), ("--no-tensorboard", "tensorboard", True),
                                ("--no-feature-cache", "cache_features", True)]:
        assert flag in help_text
        assert defaults[name] is default, name
        checked.add(name)
    assert len(checked) >= 40, sorted(names - checked)


def test_two_processes_with_the_same_run_folder(cli, synthetic_data, tmp_path):
    """The second `train` of the same run stops at once naming the first process; with --wait it
    waits for it, then finds the run finished instead of training it again."""
    import subprocess
    import time
    args = [cli, "train", "--data", synthetic_data, "--out", tmp_path, "--name", "same", "--backbone", "mobilenet_v2",
            "--unfreeze", "--image-size", "96", "--epochs", "3", "--no-tensorboard", "--stain-shift", "0"]
    env = {**os.environ, "HISTOCNN_PROGRESS": "0"}
    first = subprocess.Popen(list(map(str, args)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lock = tmp_path / "same" / ".lock"
    deadline = time.time() + 120
    while not (lock.exists() and lock.read_text().startswith(f"process {first.pid} ")):
        assert first.poll() is None and time.time() < deadline, first.communicate()
        time.sleep(0.05)
    second = run_cli(cli, *args[1:], check=False)
    assert second.returncode != 0
    assert f"is being written by process {first.pid}" in second.stderr and "--wait" in second.stderr
    third = subprocess.Popen(list(map(str, args + ["--wait"])), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    out, err = third.communicate(timeout=600)
    assert first.wait(timeout=600) == 0, first.communicate()
    assert third.returncode == 0, err
    assert f"waiting for process {first.pid}" in err
    assert "resuming from the checkpoint of epoch 3" in err  # finished by the first: not trained again
    history = (tmp_path / "same" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 3


def test_study_recipe_from_python_and_the_command_line(cli, tmp_path):
    values = histocnn.Trainer(recipe="study", epochs=3, progress=False).option_values()
    assert (values["backbone"], values["optimizer"], values["batch_size"], values["reduce_lr_patience"]) == \
        ("vgg16", "rmsprop", 32, 20)
    assert values["epochs"] == 3  # a keyword overrides the preset
    with pytest.raises(ValueError, match="unknown recipe"):
        histocnn.Trainer(recipe="keras")
    robust = histocnn.Trainer(recipe="robust-cnn", progress=False).option_values()
    assert (robust["backbone"], robust["image_size"], robust["augment"]) == ("simple_cnn", 50, "histology:0.1")
    # On the command line the preset applies first too: its ReduceLROnPlateau (patience 20) meets
    # --schedule cosine, and an explicit --reduce-lr-patience 0 lifts the contradiction.
    clash = run_cli(cli, "train", "--data", tmp_path, "--recipe", "study", "--schedule", "cosine", check=False)
    assert clash.returncode != 0 and "reduce_lr_patience 20" in clash.stderr
    # --preset is the older name of --recipe, kept as an alias.
    fixed = run_cli(cli, "train", "--data", tmp_path, "--preset", "study", "--schedule", "cosine",
                    "--reduce-lr-patience", "0", "--epochs", "0", check=False)
    assert fixed.returncode != 0 and "epochs" in fixed.stderr and "reduce_lr_patience" not in fixed.stderr
