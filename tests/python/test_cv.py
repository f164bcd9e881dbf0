"""Leave-patients-out cross-validation from Python and the command line, on synthetic patches."""
import json
import subprocess
import sys

import numpy as np
import sklearn.metrics

import histocnn
from conftest import ROOT, run_cli


def test_cross_validate_scores_every_patient_once_and_matches_sklearn(synthetic_data, tmp_path):
    result, table = histocnn.cross_validate(
        data_dir=synthetic_data, folds=2, restain=[0.2], output_dir=str(tmp_path / "out"), backbone="simple_cnn",
        freeze_backbone=False, image_size=32, hidden1=16, hidden2=8, epochs=1, tensorboard=False)
    assert sorted(table.fold.unique()) == [1, 2]
    assert set(table.stain_shift) == {0.0, 0.2}
    radius = histocnn.inference.DEFAULT_SMOOTH_RADIUS  # cv's context unless told
    assert radius == 3 and set(table.context_radius) == {0, radius}
    with_context = table[table.context_radius == radius]
    assert set(with_context.stain_shift) == {0.0, 0.2}
    table = table[table.context_radius == 0]
    as_stained = table[table.stain_shift == 0]
    assert as_stained.patches.sum() == 8 * 30  # every patch tested exactly once
    assert as_stained.patients.sum() == 8
    # Each fold's AUC is sklearn's on the fold's own predictions, read from the evaluation the
    # run folder's model gives on its test split.
    for fold in result.folds:
        test = histocnn.data.Manifest.load_csv(str(fold.run_dir / "manifest.csv")).subset("test").rows
        patient = {name: i for i, name in enumerate(sorted({r.patient for r in test}))}
        where = np.array([(patient[r.patient], r.x, r.y) for r in test])
        for sigma in (0.0, 0.2):  # restained as cv restains: per patient, with the run's seed
            ev = histocnn.evaluate(str(fold.run_dir / "model"), manifest=str(fold.run_dir / "manifest.csv"),
                                   split="test", stain_shift=sigma, seed=42)
            expected = sklearn.metrics.roc_auc_score(ev.predictions.labels, ev.predictions.p_positive)
            got = table[(table.context_radius == 0) & (table.stain_shift == sigma) & (table.fold == fold.fold)]
            assert abs(got.roc_auc.item() - expected) < 1e-9
            # With context: each test patch's P averaged over the fold's test patches of its
            # patient at most `radius` grid steps (50 px each) away, by numpy, then sklearn's AUC.
            p = np.array(ev.predictions.p_positive)
            smoothed = [p[(where[:, 0] == w[0]) & (np.abs(where[:, 1] - w[1]) <= 50 * radius)
                          & (np.abs(where[:, 2] - w[2]) <= 50 * radius)].mean() for w in where]
            expected = sklearn.metrics.roc_auc_score(ev.predictions.labels, smoothed)
            got = with_context[(with_context.stain_shift == sigma) & (with_context.fold == fold.fold)]
            assert abs(got.roc_auc.item() - expected) < 1e-9
        assert fold.context_radius == radius and len(fold.context_scores) == 2
    summary = json.loads((result.output_dir / "cv.json").read_text())
    assert len(summary["results"]) == 2
    # bench/cv_seeds.py, which docs/results.md quotes, reads the same numbers from cv.json.
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "cv_seeds.py"), "--variant", "a",
                           str(result.output_dir)], capture_output=True, text=True, timeout=60, check=True)
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| a |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    header = next(line for line in proc.stdout.splitlines() if line.startswith("| variant |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    mean = float(cells[columns.index("as stained")].split(" +- ")[0])
    assert abs(mean - as_stained[as_stained.group == "all"].roc_auc.mean()) < 5e-4
    restained = table[(table.stain_shift == 0.2) & (table.group == "all")].roc_auc.mean()
    assert abs(float(cells[columns.index("restained 0.2")].split(" +- ")[0]) - restained) < 5e-4
    # Rescored with other scoring options, from the saved models: nothing retrains, the same AUCs
    # as stained, the new sigma and no context.
    trained_at = [(f.run_dir / "metrics.json").stat().st_mtime_ns for f in result.folds]
    _, again = histocnn.cross_validate(
        data_dir=synthetic_data, folds=2, restain=[0.1], context=0, rescore=True, output_dir=str(tmp_path / "out"),
        backbone="simple_cnn", freeze_backbone=False, image_size=32, hidden1=16, hidden2=8, epochs=1,
        tensorboard=False)
    assert [(f.run_dir / "metrics.json").stat().st_mtime_ns for f in result.folds] == trained_at
    assert set(again.stain_shift) == {0.0, 0.1} and set(again.context_radius) == {0}
    np.testing.assert_allclose(again[again.stain_shift == 0].roc_auc.to_numpy(), as_stained.roc_auc.to_numpy(),
                               atol=1e-9)


def test_cv_command_joins_folders_and_reports_each(synthetic_data, tmp_path, cli):
    # A second folder of other patients: the same patches with the patient ids changed.
    other = tmp_path / "other"
    for png in synthetic_data.rglob("*.png"):
        rel = png.relative_to(synthetic_data)
        patient = rel.parts[0]
        target = other / str(rel).replace(patient, "9" + patient)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png.read_bytes())
    out = run_cli(cli, "cv", "--data", synthetic_data, other, "--folds", "2", "--fold", "1", "--restain", "0.1",
                  "--backbone", "simple_cnn", "--unfreeze", "--image-size", "32", "--epochs", "1",
                  "--output-dir", tmp_path / "cvout", "--no-tensorboard")
    assert "| as stained | all |" in out.stdout
    assert "| as stained, context 3 | all |" in out.stdout and "| as stained, context 3 | other |" in out.stdout
    assert "| restained 0.1, context 3 | all |" in out.stdout
    assert f"| as stained | {synthetic_data.name} |" in out.stdout
    assert "| as stained | other |" in out.stdout
    assert "1 of 2 folds" in out.stdout
    # The same folder twice: every patient twice, refused with both names.
    bad = run_cli(cli, "cv", "--data", synthetic_data, synthetic_data, "--output-dir", tmp_path / "bad", check=False)
    assert bad.returncode == 2
    assert "is in both" in bad.stderr
    bad = run_cli(cli, "cv", "--data", synthetic_data, "--context", "17", "--output-dir", tmp_path / "bad", check=False)
    assert bad.returncode == 2 and "--context" in bad.stderr and "[0, 16]" in bad.stderr
