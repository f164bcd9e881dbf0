"""Stain normalisation and colour augmentation from Python: the same library functions, checked
against images made by Beer-Lambert from known stain vectors and against CIE L*a*b* computed here."""
import json

import numpy as np
import pytest

import histocnn

# Ruifrok & Johnston's H&E, and the reference Macenko's method is usually run with.
RUIFROK = (np.array([0.65, 0.70, 0.29]), np.array([0.07, 0.99, 0.11]))
MACENKO = (np.array([0.5626, 0.7201, 0.4062]), np.array([0.2159, 0.8012, 0.5581]))


def unit(v):
    return v / np.linalg.norm(v)


def stained(vectors, strength, seed, size=64):
    """I = 256 exp(-(cH h + cE e)) - 1 with pure-stain, bare and mixed pixels."""
    h, e = (unit(v) for v in vectors)
    rng = np.random.default_rng(seed)
    kind = rng.random((size, size))
    ch = np.where(kind < 0.1, 0.3 + 0.9 * rng.random((size, size)), rng.random((size, size)))
    ce = np.where((kind >= 0.1) & (kind < 0.2), 0.3 + 0.9 * rng.random((size, size)), rng.random((size, size)))
    ch[(kind >= 0.1) & (kind < 0.2)] = 0
    ce[kind < 0.1] = 0
    bare = (kind >= 0.2) & (kind < 0.3)
    ch[bare] *= 0.03
    ce[bare] *= 0.03
    od = strength * (ch[..., None] * h + ce[..., None] * e)
    return np.clip(np.rint(256 * np.exp(-od) - 1), 0, 255).astype(np.uint8)


def cie_lab(rgb):
    """CIE L*a*b* of sRGB uint8 pixels (IEC 61966-2-1, D65), one row per pixel."""
    c = rgb.reshape(-1, 3) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def angle(a, b):
    return np.degrees(np.arccos(np.clip(np.dot(unit(np.asarray(a)), unit(np.asarray(b))), -1, 1)))


def test_macenko_recovers_known_stain_vectors():
    for h, e in (RUIFROK, MACENKO):
        s = histocnn.data.fit_stain_stats("macenko", [stained((h, e), 1.0, 1)])
        assert s.fitted and s.method == "macenko" and not s.borrowed_vectors
        assert angle(s.haematoxylin, h) < 2 and angle(s.eosin, e) < 2


def test_reinhard_matches_the_reference_lab_statistics():
    a, b = stained(RUIFROK, 0.7, 2), stained(MACENKO, 0.9, 3)
    norm = histocnn.data.StainNormaliser.fit("reinhard", [b])
    out = norm.normalise(a)
    assert out.shape == a.shape and out.dtype == np.uint8
    lab_out, lab_ref = cie_lab(out), cie_lab(b)
    np.testing.assert_allclose(lab_out.mean(0), lab_ref.mean(0), atol=0.6)
    np.testing.assert_allclose(lab_out.std(0), lab_ref.std(0), atol=0.6)
    np.testing.assert_allclose(norm.target.lab_mean, lab_ref.mean(0), atol=0.3)


def test_group_fit_json_round_trip_and_errors():
    ref = stained(MACENKO, 1.0, 4)
    patches = [stained(RUIFROK, 0.8, s, size=50) for s in (5, 6)]
    for method in ("reinhard", "macenko"):
        norm = histocnn.data.StainNormaliser.fit(method, [ref], fit="slide")
        assert norm.method == method and norm.fit_mode == "slide"
        source = norm.source_stats(patches)
        group = norm.normalise_group(patches)
        for p, g in zip(patches, group):
            np.testing.assert_array_equal(g, norm.normalise(p, source))
        assert not np.array_equal(group[0], norm.normalise(patches[0]))  # per patch is another fit
        back = histocnn.data.StainNormaliser.from_json(norm.to_json())
        assert json.loads(back.to_json()) == json.loads(norm.to_json())
        np.testing.assert_array_equal(back.normalise(patches[0]), norm.normalise(patches[0]))
    with pytest.raises(ValueError, match="vahadane"):
        histocnn.data.StainNormaliser.fit("vahadane", [ref])
    with pytest.raises(ValueError, match="too little tissue"):
        histocnn.data.StainNormaliser.fit("macenko", [np.full((20, 20, 3), 250, np.uint8)])


def test_hsv_augmentation_by_name():
    patch = stained(RUIFROK, 0.8, 7, size=40)
    a = histocnn.data.augment_image(patch, "hsv-strong", seed=3)
    assert a.shape == patch.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, histocnn.data.augment_image(patch, "hsv-strong", seed=3))
    assert np.abs(a.astype(int) - patch).mean() > 1
    with pytest.raises(ValueError, match="hsv-light"):
        histocnn.data.augment_image(patch, "hsv-medium")
    assert histocnn.Trainer(augment="hsv:0.5", progress=False).option_values()["augment"] == "hsv:0.5"


def test_haematoxylin_image_is_the_deconvolved_haematoxylin():
    """Against colour deconvolution done here with numpy (Ruifrok & Johnston's matrix, residual =
    H x E, inverted by numpy): the grey image is 256 exp(-c_H) - 1, and eosin does not reach it."""
    img = stained(RUIFROK, 1.0, 3)
    h, e = (unit(v) for v in RUIFROK)
    stains = np.stack([h, e, unit(np.cross(h, e))])
    od = -np.log((img.astype(np.float64) + 1) / 256)
    c_h = (od.reshape(-1, 3) @ np.linalg.inv(stains))[:, 0]
    expected = np.clip(256 * np.exp(-c_h) - 1, 0, 255).reshape(img.shape[:2])
    out = histocnn.data.haematoxylin_image(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert np.abs(out[..., 0] - expected).max() <= 0.51  # the library's image is rounded to whole levels
    # Only the eosin changed: the RGB moves, the haematoxylin image does not.
    pinker = np.clip(np.rint(256 * np.exp(-(od + 0.4 * e)) - 1), 0, 255).astype(np.uint8)
    assert np.abs(pinker.astype(int) - img).mean() > 10
    assert np.abs(histocnn.data.haematoxylin_image(pinker).astype(int) - out).mean() < 1.0


def test_restain_scales_and_shifts_the_deconvolved_concentrations():
    """Against restaining done here with numpy: concentrations by the inverse of Ruifrok & Johnston's
    matrix, c * scale + shift, back to 8-bit levels rounded half to even (what --stain-shift does to
    each test patient, with its own scale and shift)."""
    img = stained(MACENKO, 1.0, 5)
    h, e = (unit(v) for v in RUIFROK)
    stains = np.stack([h, e, unit(np.cross(h, e))])
    od = -np.log((img.astype(np.float64) + 1) / 256)
    scale, shift = np.array([1.15, 0.8, 1.05]), np.array([0.04, -0.03, 0.1])
    c = (od.reshape(-1, 3) @ np.linalg.inv(stains)) * scale + shift
    expected = np.clip(np.rint(256 * np.exp(-(c @ stains).reshape(img.shape)) - 1), 0, 255)
    out = histocnn.data.restain(img, list(scale), list(shift))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - expected).max() <= 1  # a level where the two round a .5 apart
    assert np.abs(out.astype(int) - expected).mean() < 0.01
    assert np.abs(out.astype(int) - img).mean() > 5
    # Scale 1 and shift 0 give the image back, up to one level of rounding.
    assert np.abs(histocnn.data.restain(img).astype(int) - img).max() <= 1


def test_a_model_trained_on_the_grey_level_sees_only_it(synthetic_data, tmp_path):
    trainer = histocnn.Trainer(data_dir=str(synthetic_data), output_dir=str(tmp_path), backbone="simple_cnn",
                               image_size=32, hidden1=16, hidden2=8, epochs=1, stain_shift=0.0, tensorboard=False,
                               freeze_backbone=False, workers=1, progress=False, colour="grey")
    trainer.fit()
    predictor = histocnn.Predictor(trainer.result.model_dir)
    assert predictor.colour == "grey"
    # A colourful patch and its grey level (ITU-R BT.601 luma, computed here) score the same.
    rng = np.random.default_rng(0)
    colourful = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
    luma = np.rint(colourful @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    p = predictor.predict([colourful, np.repeat(luma[..., None], 3, axis=2)])
    assert abs(p[0] - p[1]) < 1e-4  # OpenCV's fixed-point luma may round a pixel the other way
    with pytest.raises(ValueError, match="rgb, grey, haematoxylin"):
        histocnn.Trainer(data_dir=str(synthetic_data), colour="sepia")


def test_white_balance_to_the_glass_cancels_a_slide_wide_tint():
    """A uniform optical density added to every pixel of a slide (computed here) is the glass the
    white-balanced Macenko fit subtracts; the normalised slides then agree."""
    slide = [stained(RUIFROK, 1.0, seed, size=96) for seed in (31, 32, 33)]  # enough pixels to show glass
    tint = np.array([0.10, 0.18, 0.06])
    tinted = [np.clip(np.rint(256 * np.exp(-(-np.log((s + 1.0) / 256) + tint)) - 1), 0, 255).astype(np.uint8)
              for s in slide]
    ref = stained(MACENKO, 1.2, 3)
    diffs = {}
    for wb in (False, True):
        norm = histocnn.data.StainNormaliser.fit("macenko", [ref], fit="slide", white_balance=wb)
        assert norm.white_balance == wb
        a, b = norm.normalise_group(slide), norm.normalise_group(tinted)
        diffs[wb] = np.mean([np.abs(x.astype(int) - y).mean() for x, y in zip(a, b)])
        if wb:
            glass = np.array(norm.source_stats(tinted).background) - np.array(norm.source_stats(slide).background)
            assert np.abs(glass - tint).max() < 0.02
            assert histocnn.data.StainNormaliser.from_json(norm.to_json()).white_balance
    assert diffs[True] < 1.5 < 5 < diffs[False]
    with pytest.raises(ValueError, match="part of Macenko"):
        histocnn.data.StainNormaliser.fit("reinhard", [ref], white_balance=True)


def test_white_balance_alone_is_von_kries_on_each_slides_glass():
    """White balance alone against numpy: each channel's glass is the 1st percentile (numpy's) of
    the optical density of the non-white pixels, and every pixel's density moves by the reference's
    glass minus the slide's; the stains are not touched, so a tinted slide comes back as it was."""
    def density(img):
        return -np.log((img.astype(float) + 1.0) / 256)

    def glass(images):
        pixels = np.concatenate([i.reshape(-1, 3) for i in images])
        pixels = pixels[(pixels != 255).any(axis=1)]
        return np.percentile(density(pixels), 1, axis=0)

    slide = [stained(RUIFROK, 1.0, seed, size=112) for seed in (41, 42)]  # enough pixels to show glass
    tint = np.array([0.10, 0.18, 0.06])
    tinted = [np.clip(np.rint(256 * np.exp(-(density(s) + tint)) - 1), 0, 255).astype(np.uint8) for s in slide]
    ref = stained(MACENKO, 1.2, 3)
    norm = histocnn.data.StainNormaliser.fit("white-balance", [ref], fit="slide")
    assert norm.method == "white-balance" and norm.fit_mode == "slide"
    np.testing.assert_allclose(norm.target.background, glass([ref]), rtol=1e-12)
    source = norm.source_stats(tinted)
    np.testing.assert_allclose(source.background, glass(tinted), rtol=1e-12)
    out = norm.normalise_group(tinted)
    for t, o in zip(tinted, out):
        expected = np.clip(np.rint(256 * np.exp(-(density(t) - glass(tinted) + glass([ref]))) - 1), 0, 255)
        assert np.abs(o.astype(int) - expected).max() <= 1  # a rounding tie may fall the other way
    back = norm.normalise_group(slide)
    assert np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(out, back)]) < 1.5
    assert np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(tinted, slide)]) > 10
    # One 50-pixel patch is too small to show its glass (fewer non-white pixels than eight such
    # patches): it is taken to have the reference's, and passes through unchanged.
    patch = tinted[0][:50, :50].copy()
    np.testing.assert_array_equal(norm.source_stats([patch]).background, norm.target.background)
    np.testing.assert_array_equal(norm.normalise(patch), patch)
    with pytest.raises(ValueError, match="white-balance"):
        histocnn.data.StainNormaliser.fit("glass", [ref])
