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
