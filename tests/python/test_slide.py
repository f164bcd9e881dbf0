"""Whole slides and large images from Python and from `histocnn slide predict`: the same tiles and
probabilities, the tumour found where it was drawn, the reader against the pixels written."""
import csv
import json
import os
import pathlib

import numpy as np
import pytest

from conftest import run_cli

GLASS, STROMA, TUMOUR = (245, 245, 245), (230, 160, 200), (110, 50, 150)


def purple_detector_bundle(folder):
    """A simple_cnn bundle whose P(IDC) is a known function of colour (as in slide_test.cpp): the
    first convolution computes relu(0.5 - green), the others pass it through, the head gives logit
    60 (f - 0.15) for class 1. About 1 on purple tiles, about 0 on pink stroma and glass."""
    import histocnn
    version = pathlib.Path(folder) / "1"
    version.mkdir(parents=True)
    tensors = {}
    widths = [3, 32, 64, 128, 256]
    for block in range(4):
        conv, bn = 4 * block, 4 * block + 1
        w = np.zeros((widths[block + 1], widths[block], 3, 3), np.float32)
        if block == 0:
            w[0, 1, 1, 1] = -1.0
        else:
            w[0, 0, 1, 1] = 1.0
        tensors[f"backbone.features.{conv}.weight"] = w
        bias = np.zeros(widths[block + 1], np.float32)
        if block == 0:
            bias[0] = 0.5
        tensors[f"backbone.features.{bn}.weight"] = np.ones(widths[block + 1], np.float32)
        tensors[f"backbone.features.{bn}.bias"] = bias
        tensors[f"backbone.features.{bn}.running_mean"] = np.zeros(widths[block + 1], np.float32)
        tensors[f"backbone.features.{bn}.running_var"] = np.ones(widths[block + 1], np.float32)
        tensors[f"backbone.features.{bn}.num_batches_tracked"] = np.zeros((), np.int64)
    fc1 = np.zeros((4, 256), np.float32)
    fc1[0, 0] = 1
    fc2 = np.zeros((4, 4), np.float32)
    fc2[0, 0] = 1
    logits = np.zeros((2, 4), np.float32)
    logits[1, 0] = 60
    tensors.update({"head.fc1.weight": fc1, "head.fc1.bias": np.zeros(4, np.float32),
                    "head.fc2.weight": fc2, "head.fc2.bias": np.zeros(4, np.float32),
                    "head.logits.weight": logits, "head.logits.bias": np.array([0, -9], np.float32)})
    histocnn.io.save_safetensors(str(version / "model.safetensors"), tensors)
    card = {"format": "histocnn.model", "format_version": 1, "backbone": "simple_cnn",
            "classifier": {"backbone": "simple_cnn", "head": "dense", "hidden1": 4, "hidden2": 4, "dropout": 0.0},
            "preprocessing": {"image_size": 32, "pad_to": 50, "mpp": 4.0, "mean": [0, 0, 0], "std": [1, 1, 1]},
            "class_names": ["IDC-negative", "IDC-positive"], "threshold": 0.5}
    (version / "model.json").write_text(json.dumps(card))
    return pathlib.Path(folder)


def draw_slide(width, height, tumour):
    """Glass, an ellipse of stroma, and a purple rectangle (x0, y0, x1, y1) in it, as RGB uint8."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[:] = GLASS
    inside = ((x - width / 2) / (0.45 * width)) ** 2 + ((y - height / 2) / (0.42 * height)) ** 2 <= 1
    img[inside] = STROMA
    x0, y0, x1, y1 = tumour
    img[y0:y1, x0:x1] = TUMOUR
    return img


def overlap(tile, tumour):
    x0, y0, x1, y1 = tumour
    w = max(0, min(tile["x"] + tile["w"], x1) - max(tile["x"], x0))
    h = max(0, min(tile["y"] + tile["h"], y1) - max(tile["y"], y0))
    return w * h / (tile["w"] * tile["h"])


@pytest.fixture(scope="module")
def large_png(tmp_path_factory):
    from PIL import Image
    folder = tmp_path_factory.mktemp("slide")
    tumour = (2600, 500, 3500, 1500)
    image = draw_slide(4000, 3000, tumour)
    path = folder / "large.png"
    Image.fromarray(image).save(path, compress_level=1)
    return path, image, tumour


def test_slide_predict_command_and_python_agree(cli, large_png, tmp_path):
    import histocnn
    path, image, tumour = large_png
    model = purple_detector_bundle(tmp_path / "model")

    # The reader hands back the pixels that were written, and white outside the image.
    reader = histocnn.inference.SlideReader(str(path))
    assert reader.format == "png" and (reader.width, reader.height) == (4000, 3000) and reader.mpp is None
    region = reader.read_region(0, 2550, 450, 100, 80)
    assert region.shape == (80, 100, 3) and region.dtype == np.uint8
    assert np.array_equal(region, image[450:530, 2550:2650])
    assert (reader.read_region(0, 3990, 2990, 20, 20)[15:, 15:] == 255).all()

    # No scale in a PNG: the command says to pass --mpp.
    bad = run_cli(cli, "slide", "predict", path, "--model", model, "--out", tmp_path / "x", check=False)
    assert bad.returncode != 0 and "--mpp" in bad.stderr

    out = tmp_path / "out"
    printed = run_cli(cli, "slide", "predict", path, "--model", model, "--mpp", "1", "--out", out).stdout
    assert "positive tiles" in printed
    for name in ("heatmap.png", "overlay.png", "thumbnail.png", "mask.png", "tiles.csv", "heatmap.npy", "summary.json"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mpp"] == 1 and summary["mpp_source"] == "option" and summary["target_mpp"] == 4
    assert summary["tile_size_level0"] == pytest.approx(200) and summary["grid"] == {"cols": 20, "rows": 15}
    tiles = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(open(out / "tiles.csv"))]
    assert len(tiles) == summary["score"]["tissue_tiles"]

    # Python, through a Predictor: the same tiles and probabilities.
    predictor = histocnn.Predictor(model)
    result = histocnn.inference.predict_slide(predictor, str(path), mpp=1.0)
    assert [(t.col, t.row) for t in result.tiles] == [(int(t["col"]), int(t["row"])) for t in tiles]
    assert np.allclose([t.p for t in result.tiles], [t["p_idc"] for t in tiles], atol=1e-5)
    grid = result.probability_grid()
    assert grid.shape == (15, 20) and np.isnan(grid[0, 0])
    assert np.allclose(np.load(out / "heatmap.npy"), grid, equal_nan=True)
    assert result.score.positive_tiles == sum(t["positive"] for t in tiles)
    assert result.smooth_radius == 0 and result.score_with_context is None and "p_idc_context" not in tiles[0]

    # Context (--smooth 1): each tile's P also averaged over the tissue tiles of its 3 x 3 window,
    # against numpy's mean over the same window of the patch-alone grid.
    out_context = tmp_path / "out-context"
    printed = run_cli(cli, "slide", "predict", path, "--model", model, "--mpp", "1", "--smooth", "1",
                      "--out", out_context).stdout
    assert "with context" in printed and (out_context / "heatmap_context.png").exists()
    rows = list(csv.DictReader(open(out_context / "tiles.csv")))
    padded = np.pad(grid.astype(np.float64), 1, constant_values=np.nan)
    for row in rows:
        c, r = int(row["col"]), int(row["row"])
        assert float(row["p_idc"]) == pytest.approx(grid[r, c], abs=1e-5)
        assert float(row["p_idc_context"]) == pytest.approx(np.nanmean(padded[r:r + 3, c:c + 3]), abs=1e-5)
    with_context = json.loads((out_context / "summary.json").read_text())["score_with_context"]
    assert with_context["positive_tiles"] == sum(int(row["positive_context"]) for row in rows)
    smoothed = histocnn.inference.predict_slide(predictor, str(path), mpp=1.0, smooth_radius=1)
    assert smoothed.score_with_context.positive_tiles == with_context["positive_tiles"]
    assert np.allclose(smoothed.probability_grid(context=True),
                       [[np.nan if np.isnan(grid[r, c]) else np.nanmean(padded[r:r + 3, c:c + 3])
                         for c in range(grid.shape[1])] for r in range(grid.shape[0])], atol=1e-5, equal_nan=True)
    assert smoothed.heatmap(context=True).shape == smoothed.heatmap().shape

    # The positives are on the tumour: every tile mostly inside is positive, none away from it.
    for t in tiles:
        o = overlap(t, tumour)
        if o >= 0.75:
            assert t["p_idc"] >= 0.5, t
        if o == 0:
            assert t["p_idc"] < 0.5, t
        if t["p_idc"] >= 0.5:
            assert o >= 0.2, t
    assert result.score.positive_tiles >= 12  # 900 x 1000 px of tumour: 4.5 x 5 tiles of 200

    # A tile's probability is the predictor's on that tile cut from the image and shrunk 4 times.
    from PIL import Image
    tile = next(t for t in result.tiles if t.p >= 0.5)
    patch = image[tile.y:tile.y + tile.h, tile.x:tile.x + tile.w]
    shrunk = np.asarray(Image.fromarray(patch).resize((50, 50), Image.BOX))
    assert predictor.predict(shrunk)[0] == pytest.approx(tile.p, abs=0.02)


def test_tissue_mask_and_errors(tmp_path):
    import histocnn
    half = np.empty((64, 64, 3), np.uint8)
    half[:] = GLASS
    half[:, :32] = STROMA
    mask = histocnn.inference.tissue_mask(half)
    assert mask.mask.shape == (64, 64) and 0.05 <= mask.threshold <= 0.15
    assert mask.tissue_fraction == pytest.approx(0.5, abs=0.02)
    (tmp_path / "notes.svs").write_text("not a slide\n")
    with pytest.raises(ValueError, match="unsupported format"):
        histocnn.inference.SlideReader(str(tmp_path / "notes.svs"))
    with pytest.raises(FileNotFoundError):
        histocnn.inference.SlideReader(str(tmp_path / "missing.svs"))


def test_real_aperio_slide_is_read_at_its_scale(tmp_path):
    """CMU-1-Small-Region.svs (HISTOCNN_SLIDES_DIR): 2220 x 2967 px at 0.499 um/px (its SOURCES.md)."""
    import histocnn
    slides = os.environ.get("HISTOCNN_SLIDES_DIR")
    if not slides or not os.path.exists(os.path.join(slides, "CMU-1-Small-Region.svs")):
        pytest.skip("no real slides: set HISTOCNN_SLIDES_DIR or place ../shared/data/slides beside the repository")
    reader = histocnn.inference.SlideReader(os.path.join(slides, "CMU-1-Small-Region.svs"))
    assert reader.format == "openslide:aperio"
    assert (reader.width, reader.height) == (2220, 2967)
    assert reader.mpp == pytest.approx(0.499)
    thumb = reader.read_downsampled(8.0)
    assert thumb.shape == (371, 278, 3)  # 2967 / 8, 2220 / 8, rounded
    model = purple_detector_bundle(tmp_path / "model")
    result = histocnn.inference.predict_slide(str(model), os.path.join(slides, "CMU-1-Small-Region.svs"))
    assert result.mpp_source == "openslide.mpp-x" and (result.cols, result.rows) == (6, 8)
    assert 0.2 < (result.mask > 0).mean() < 0.55  # about a third of it is tissue
