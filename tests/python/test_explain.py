"""`histocnn explain` and Predictor.explain: Grad-CAM maps written as overlays and .npy, the same
from the command line and from Python."""
import numpy as np
import pytest

from conftest import run_cli


def test_explain_command_and_python_agree(cli, serving_runs, serving_patch, tmp_path):
    import histocnn
    from PIL import Image
    model = serving_runs[0] / "model"
    patch = serving_patch[0]
    out = tmp_path / "cams"
    printed = run_cli(cli, "explain", "--model", model, patch, "--out", out).stdout.splitlines()
    assert printed[0].split(",")[0] == str(patch)
    predictor = histocnn.Predictor(model)
    assert float(printed[0].split(",")[1]) == pytest.approx(predictor.predict([str(patch)])[0], abs=1e-5)
    cam = np.load(out / f"{patch.stem}_cam.npy")
    size = predictor.image_size
    assert cam.shape == (size, size) and cam.dtype == np.float32
    assert 0 <= cam.min() and cam.max() <= 1
    assert np.allclose(cam, predictor.explain([str(patch)])[0], atol=1e-5)
    overlay = Image.open(out / f"{patch.stem}_cam.png")
    assert overlay.size[1] == size and overlay.size[0] > size  # the patch and a colour bar
    plus = predictor.explain([str(patch)], method="gradcam++")
    assert plus.shape == (1, size, size)
    bad = run_cli(cli, "explain", "--model", model, patch, "--method", "lime", check=False)
    assert bad.returncode != 0 and "gradcam++" in bad.stderr


def test_maps_command_matches_the_predictions(cli, serving_runs, synthetic_data, tmp_path):
    """`histocnn maps` on synthetic patients: one PNG per patient, and burden.csv agrees with the
    model's own predictions computed in Python."""
    import csv
    import histocnn
    model = serving_runs[0] / "model"
    out = tmp_path / "maps"
    printed = run_cli(cli, "maps", "--model", model, "--data", synthetic_data, "--out", out, "--smooth", "1").stdout
    assert "patch alone" in printed and "with context (radius 1)" in printed
    manifest = histocnn.data.scan_directory(str(synthetic_data)).manifest
    predictor = histocnn.Predictor(model)
    paths = [str(synthetic_data / r.path) for r in manifest.rows]
    p = predictor.predict(paths)
    rows = {r["patient"]: r for r in csv.DictReader(open(out / "burden.csv"))}
    assert set(rows) == {r.patient for r in manifest.rows}
    for patient, row in rows.items():
        mine = [i for i, r in enumerate(manifest.rows) if r.patient == patient]
        assert int(row["patches"]) == len(mine)
        assert float(row["true_burden"]) == pytest.approx(np.mean([manifest.rows[i].label for i in mine]), abs=1e-4)
        assert float(row["predicted_burden"]) == pytest.approx(
            np.mean([p[i] >= predictor.threshold for i in mine]), abs=1e-4)
        assert (out / f"{patient}.png").exists()
    smoothed = histocnn.inference.smooth_over_neighbours(manifest, list(p), 1)
    report = histocnn.inference.write_slide_maps(manifest, list(p), predictor.threshold, str(tmp_path / "py"), 1, 2)
    assert len(report.images) == 2 and len(report.burden) == len(rows)
    assert float(rows[report.burden[0].patient]["predicted_burden_with_context"]) == pytest.approx(
        np.mean([smoothed[i] >= predictor.threshold for i, r in enumerate(manifest.rows)
                 if r.patient == report.burden[0].patient]), abs=1e-4)
    # The radius is bounded before anything is predicted, with the bound the bindings expose.
    bad = run_cli(cli, "maps", "--model", model, "--data", synthetic_data, "--out", tmp_path / "bad", "--smooth", "17",
                  check=False)
    assert bad.returncode == 2 and "--smooth" in bad.stderr and "[0, 16]" in bad.stderr
    assert histocnn.inference.MAX_SMOOTH_RADIUS == 16 and not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match=r"\[0, 16\]"):
        histocnn.inference.smooth_over_neighbours(manifest, list(p), 17)


def test_tta_from_python_and_the_command_line(cli, serving_runs, synthetic_data):
    """--tta and Predictor(tta=True) give the same numbers, and differ from plain prediction."""
    import histocnn
    model = serving_runs[0] / "model"
    files = sorted(str(p) for p in (synthetic_data).rglob("*.png"))[:5]
    plain = histocnn.Predictor(model).predict(files)
    tta = histocnn.Predictor(model, tta=True).predict(files)
    assert not np.allclose(plain, tta, atol=1e-6)
    out = run_cli(cli, "predict", "--model", model, "--tta", *files).stdout.splitlines()[1:]
    assert np.allclose([float(line.split(",")[1]) for line in out], tta, atol=1e-5)
    evaluated = histocnn.evaluate(model, data_dir=str(synthetic_data), split="all", tta=True)
    assert len(evaluated.predictions.p_positive) > 0
