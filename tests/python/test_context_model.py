"""histocnn.ContextModel: the learned head over each patch's slide neighbourhood, through the
bindings (fit, predict, JSON, weights), its AUC checked with scikit-learn, and `histocnn maps
--context-model` on a trained run."""
import json

import numpy as np
import pytest

from conftest import run_cli


def synthetic_slides(tmp_path, name, patients, seed, coherent=True):
    """Slides of 32 x 32 places (elliptic tissue with holes) whose IDC is contiguous discs, or the same
    share of positives dealt at random; P is the truth under heavy noise (logit +-1 + N(0, 2^2)). A
    manifest CSV without images: the head needs coordinates, not pixels."""
    import histocnn
    rng = np.random.default_rng(seed)
    lines, p, labels = ["path,patient,label,x,y"], [], []
    for k in range(patients):
        patient = str(2000 + k)
        discs = [(rng.uniform(0, 32), rng.uniform(0, 32), rng.uniform(3, 7)) for _ in range(3)]
        for r in range(32):
            for c in range(32):
                if ((c - 15.5) / 16) ** 2 + ((r - 15.5) / 13) ** 2 > 1 or rng.uniform() < 0.05:
                    continue
                positive = any(np.hypot(c - dc, r - dr) <= rad for dc, dr, rad in discs)
                if not coherent:
                    positive = rng.uniform() < 0.3
                label = int(positive)
                x, y = 1 + 50 * c, 1 + 50 * r
                lines.append(f"{patient}/{label}/{patient}_idx5_x{x}_y{y}_class{label}.png,{patient},{label},{x},{y}")
                p.append(1 / (1 + np.exp(-((1.0 if positive else -1.0) + rng.normal(0, 2)))))
                labels.append(label)
    csv = tmp_path / f"{name}.csv"
    csv.write_text("\n".join(lines) + "\n")
    return histocnn.data.Manifest.load_csv(str(csv)), p, labels


def test_fit_predict_and_json_round_trip(tmp_path):
    import histocnn
    manifest, p, labels = synthetic_slides(tmp_path, "fit", 6, seed=11)
    head = histocnn.ContextModel.fit(manifest, p, labels)
    assert list(head.weights) == histocnn.inference.context_feature_names()
    assert len(head.weights) == 8
    features = histocnn.inference.context_features(manifest, p)
    assert features.shape == (len(p), 8)
    assert features[:, 0] == pytest.approx(np.log(np.clip(p, 1e-4, 1 - 1e-4) / (1 - np.clip(p, 1e-4, 1 - 1e-4))))
    # The model is the logistic function of the standardised features, as documented.
    z = (features - np.array(head.mean)) / np.array(head.scale)
    by_hand = 1 / (1 + np.exp(-(head.intercept + z @ np.array(list(head.weights.values())))))
    predicted = head.predict(manifest, p)
    assert predicted == pytest.approx(by_hand, abs=1e-12)
    again = histocnn.ContextModel.from_json(head.to_json())
    assert np.array_equal(again.predict(manifest, p), predicted)
    assert again.weights == head.weights and again.threshold == head.threshold
    saved = json.loads(head.to_json())
    assert saved["format"] == "histocnn.context_model" and saved["fitted_on"]["patches"] == len(p)
    head.save(str(tmp_path / "context_model.json"))
    assert np.array_equal(histocnn.ContextModel.load(str(tmp_path / "context_model.json")).predict(manifest, p),
                          predicted)
    with pytest.raises(ValueError, match="one class"):
        histocnn.ContextModel.fit(manifest, p, [0] * len(p))
    with pytest.raises(ValueError, match="labels"):
        histocnn.ContextModel.fit(manifest, p, labels[:-1])
    with pytest.raises(ValueError, match="not a context model"):
        histocnn.ContextModel.from_json('{"format": "something else"}')

    # Which head maps a model's slides: the one beside <run>/model[/<version>], a chosen file, or none.
    run = tmp_path / "run"
    (run / "model" / "3").mkdir(parents=True)
    find = histocnn.inference.context_model_for
    assert find(str(run / "model")) is None  # nothing beside it yet
    head.save(str(run / "context_model.json"))
    for model_dir in (run / "model", run / "model" / "3"):
        assert find(str(model_dir)).weights == head.weights
    assert find(str(run / "model"), "none") is None
    assert find(str(tmp_path / "elsewhere"), str(tmp_path / "context_model.json")).weights == head.weights
    with pytest.raises(FileNotFoundError, match="--context-model none"):
        find(str(run / "model"), str(tmp_path / "missing.json"))
    (run / "context_model.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="found beside the model"):
        find(str(run / "model"))


def test_auc_gain_matches_scikit_learn(tmp_path):
    skm = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not importable: no independent AUC oracle")
    import histocnn
    manifest, p, labels = synthetic_slides(tmp_path, "fit", 8, seed=21)
    test_manifest, test_p, test_labels = synthetic_slides(tmp_path, "test", 8, seed=22)
    head = histocnn.ContextModel.fit(manifest, p, labels)
    learned = head.predict(test_manifest, test_p)
    smoothed = histocnn.inference.smooth_over_neighbours(test_manifest, test_p, 1)
    alone_auc = skm.roc_auc_score(test_labels, test_p)
    learned_auc = skm.roc_auc_score(test_labels, learned)
    assert histocnn.metrics.roc_auc(test_labels, list(learned)) == pytest.approx(learned_auc, abs=1e-12)
    assert learned_auc > alone_auc + 0.10
    assert learned_auc >= skm.roc_auc_score(test_labels, smoothed) - 0.01

    # The control: labels dealt at random over the places give the neighbours nothing to learn.
    manifest, p, labels = synthetic_slides(tmp_path, "fit_random", 8, seed=23, coherent=False)
    test_manifest, test_p, test_labels = synthetic_slides(tmp_path, "test_random", 8, seed=24, coherent=False)
    head = histocnn.ContextModel.fit(manifest, p, labels)
    neighbour_weights = [w for name, w in head.weights.items() if name not in ("own_logit", "own_logit_x_presence")]
    assert max(abs(w) for w in neighbour_weights) < 0.15, head.weights
    gain = skm.roc_auc_score(test_labels, head.predict(test_manifest, test_p)) - skm.roc_auc_score(test_labels, test_p)
    assert gain < 0.01


def test_maps_command_uses_the_context_model(cli, serving_runs, synthetic_data, tmp_path):
    """`histocnn maps`: a learned head given with --context-model adds its row; the default is the
    run's own context_model.json; an unreadable file is refused with a message that names it."""
    import histocnn
    run = serving_runs[0]
    model = run / "model"
    manifest = histocnn.data.scan_directory(str(synthetic_data)).manifest
    p = histocnn.Predictor(model).predict([str(synthetic_data / r.path) for r in manifest.rows])
    head = histocnn.ContextModel.fit(manifest, list(p), [r.label for r in manifest.rows])
    head.save(str(tmp_path / "head.json"))
    out = tmp_path / "maps"
    printed = run_cli(cli, "maps", "--model", model, "--data", synthetic_data, "--out", out,
                      "--context-model", tmp_path / "head.json").stdout
    assert "patch alone" in printed and "with context (radius 3)" in printed  # maps' default radius
    assert "with context (learned head over the neighbourhood)" in printed
    learned = head.predict(manifest, list(p))
    auc_row = next(line for line in printed.splitlines() if line.startswith("with context (learned"))
    assert float(auc_row.split()[-4]) == pytest.approx(histocnn.metrics.roc_auc([r.label for r in manifest.rows],
                                                                                list(learned)), abs=1e-4)
    report = histocnn.inference.write_slide_maps(manifest, list(p), 0.5, str(tmp_path / "py"), 1, 1, context=head)
    assert "learned head" in report.text

    # Without the option: the run's own context_model.json, which training fitted on its validation split.
    saved = json.loads((run / "context_model.json").read_text())
    assert saved["fitted_on"]["source"] == "predictions_validation.csv"
    default = run_cli(cli, "maps", "--model", model, "--data", synthetic_data, "--out", out).stdout
    assert "learned head over" in default and "predictions_validation.csv" in default
    evaluated = run_cli(cli, "evaluate", "--model", model / "1", "--data", synthetic_data, "--split", "all",
                        "--maps", tmp_path / "evaluate-maps").stdout
    assert "with context (learned head over the neighbourhood)" in evaluated
    assert "learned head over" not in run_cli(cli, "maps", "--model", model, "--data", synthetic_data, "--out", out,
                                              "--context-model", "none").stdout

    (tmp_path / "broken.json").write_text("not json")
    for bad in (tmp_path / "broken.json", tmp_path / "missing.json"):
        proc = run_cli(cli, "maps", "--model", model, "--data", synthetic_data, "--out", out,
                       "--context-model", bad, check=False)
        assert proc.returncode != 0
        assert bad.name in proc.stderr and "context model" in proc.stderr
