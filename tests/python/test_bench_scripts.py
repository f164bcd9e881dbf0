"""The result scripts of bench/ that docs/results.md quotes, on prediction files whose answers are
known by construction."""
import csv
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys

from sklearn.metrics import roc_auc_score

import histocnn

from conftest import ROOT, run_cli


def write_predictions(path, rows):
    """A run's predictions_test.csv: rows of (path, patient, label, logit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["path,patient,label,p_positive"]
    for file, patient, label, z in rows:
        lines.append(f"{file},{patient},{label},{1 / (1 + math.exp(-z))!r}")
    path.write_text("\n".join(lines) + "\n")


def run_script(name, *args):
    return subprocess.run([sys.executable, str(ROOT / "bench" / name), *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def table(stdout):
    """A markdown table's rows as lists of cells, header and rule left out."""
    rows = [line.strip("|").split("|") for line in stdout.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows[2:]]


def test_ensemble_scores_the_mean_logit_of_the_patches_the_runs_share(tmp_path):
    # Each run alone ranks one positive below one negative (AUC 3/4); their mean logit separates
    # the classes (AUC 1). The runs name the same patches by other folders, as runs made in other
    # output folders do, and the second has a patch the first lacks (left out).
    write_predictions(tmp_path / "a" / "predictions_test.csv",
                      [("x/p1/0/n1.png", "p1", 0, 0.0), ("x/p1/0/n2.png", "p1", 0, 3.0),
                       ("x/p2/1/t1.png", "p2", 1, 1.0), ("x/p2/1/t2.png", "p2", 1, 4.0)])
    write_predictions(tmp_path / "b" / "predictions_test.csv",
                      [("y/p1/0/n1.png", "p1", 0, 3.0), ("y/p1/0/n2.png", "p1", 0, 0.0),
                       ("y/p2/1/t1.png", "p2", 1, 4.0), ("y/p2/1/t2.png", "p2", 1, 1.0),
                       ("y/p3/1/t3.png", "p3", 1, -9.0)])
    proc = run_script("ensemble_predictions.py", tmp_path / "a", tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    assert "4 test patches shared by 2 runs" in proc.stdout
    aucs = {name: float(auc) for name, auc in table(proc.stdout)}
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert aucs == {a: 0.75, b: 0.75, f"{a} + {b}": 1.0}


def test_ensemble_of_cross_validations_scores_each_shared_fold_and_their_mean(tmp_path):
    # fold-1: each run alone 3/4, their mean logit 1 (as above); fold-2: every run separates the
    # classes. fold-3, which only the first has, is left out.
    a = [("p1/0/n1.png", "p1", 0, 0.0), ("p1/0/n2.png", "p1", 0, 3.0),
         ("p2/1/t1.png", "p2", 1, 1.0), ("p2/1/t2.png", "p2", 1, 4.0)]
    b = [("p1/0/n1.png", "p1", 0, 3.0), ("p1/0/n2.png", "p1", 0, 0.0),
         ("p2/1/t1.png", "p2", 1, 4.0), ("p2/1/t2.png", "p2", 1, 1.0)]
    clean = [("p3/0/n.png", "p3", 0, -1.0), ("p4/1/t.png", "p4", 1, 1.0)]
    for cv, rows in (("a", a), ("b", b)):
        write_predictions(tmp_path / cv / "fold-1" / "predictions_test.csv", rows)
        write_predictions(tmp_path / cv / "fold-2" / "predictions_test.csv", clean)
    write_predictions(tmp_path / "a" / "fold-3" / "predictions_test.csv", clean)
    proc = run_script("ensemble_predictions.py", "--cv", tmp_path / "a", tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    sd = f"{statistics.stdev([0.75, 1.0]):.4f}"
    assert table(proc.stdout) == [["fold-1", "0.7500", "0.7500", "1.0000"],
                                  ["fold-2", "1.0000", "1.0000", "1.0000"],
                                  ["mean +- sd", f"0.8750 +- {sd}", f"0.8750 +- {sd}", "1.0000 +- 0.0000"]]
    proc = run_script("ensemble_predictions.py", "--cv", tmp_path / "a", tmp_path / "nothing-here")
    assert proc.returncode != 0 and "no fold-*/predictions_test.csv that every folder has" in proc.stderr


def test_ensemble_refuses_runs_of_other_patients_or_labels(tmp_path):
    write_predictions(tmp_path / "a" / "predictions_test.csv", [("p1/0/n1.png", "p1", 0, 0.0)])
    write_predictions(tmp_path / "b" / "predictions_test.csv", [("p9/0/n1.png", "p9", 0, 0.0)])
    write_predictions(tmp_path / "c" / "predictions_test.csv", [("p1/0/n1.png", "p1", 1, 0.0)])
    proc = run_script("ensemble_predictions.py", tmp_path / "a", tmp_path / "b")
    assert proc.returncode != 0 and "share no test patch" in proc.stderr
    proc = run_script("ensemble_predictions.py", tmp_path / "a", tmp_path / "c")
    assert proc.returncode != 0 and "disagree on a label" in proc.stderr
    proc = run_script("ensemble_predictions.py", tmp_path / "missing")
    assert proc.returncode != 0 and "predictions_test.csv: not found" in proc.stderr


def test_patient_calibration_removes_a_shift_between_patients(tmp_path):
    # Within each patient the classes separate; the second patient's logits sit 10 higher, so pooled
    # the first's positives rank below the second's negatives (AUC 12/16). Any per-patient shift or
    # standardisation lines the two patients up (AUC 1).
    rows = []
    for patient, offset in (("p1", 0.0), ("p2", 10.0)):
        for i, (label, z) in enumerate([(0, 0.0), (0, 1.0), (1, 2.0), (1, 3.0)]):
            rows.append((f"{patient}/{label}/{i}.png", patient, label, z + offset))
    for fold in (1, 2):
        write_predictions(tmp_path / f"fold-{fold}" / "predictions_test.csv", rows)
    proc = run_script("patient_calibration.py", tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = table(proc.stdout)
    assert [r[0] for r in rows] == ["fold-1", "fold-2", "mean"]
    for r in rows:
        assert r[1:] == ["0.750", "1.000", "1.000", "1.000", "1.000"]
    proc = run_script("patient_calibration.py", tmp_path / "nothing-here")
    assert proc.returncode != 0 and "no fold-*/predictions_test.csv" in proc.stderr


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def auc_and_median_per_patient(rows):
    """scikit-learn's pooled ROC-AUC, the median of each patient's own (patients with both classes),
    and how many patients have both classes."""
    labels = [int(r["label"]) for r in rows]
    scores = [float(r["p_positive"]) for r in rows]
    per_patient = []
    for patient in {r["patient"] for r in rows}:
        y = [int(r["label"]) for r in rows if r["patient"] == patient]
        p = [float(r["p_positive"]) for r in rows if r["patient"] == patient]
        if 0 < sum(y) < len(y):
            per_patient.append(roc_auc_score(y, p))
    return roc_auc_score(labels, scores), statistics.median(per_patient), len(per_patient)


def test_stain_shift_table_scores_a_run_on_its_own_test_patients(serving_runs):
    run = serving_runs[0]
    proc = run_script("stain_shift_table.py", "--sigmas", "0,0.2", "--per-patient", run)
    assert proc.returncode == 0, proc.stderr
    [row] = table(proc.stdout)
    assert row[0].startswith("simple_cnn, scratch, all layers train, 50 px, 1 epochs")
    auc0, auc2, drop, median = map(float, row[1:])
    # The oracle: the predictions training made of its test split, scored by scikit-learn.
    expected_auc, expected_median, _ = auc_and_median_per_patient(read_csv(run / "predictions_test.csv"))
    assert auc0 == round(expected_auc, 3)
    assert median == round(expected_median, 3)
    assert drop == round(auc2 - auc0, 3)


def test_unseen_patients_table_pools_every_patch_of_a_folder(cli, serving_runs, synthetic_data, tmp_path):
    run = serving_runs[0]
    proc = run_script("unseen_patients_table.py", "--data", synthetic_data, "--sigmas", "0", run)
    assert proc.returncode == 0, proc.stderr
    [row] = table(proc.stdout)
    pooled, median, patients = float(row[1]), float(row[2]), int(row[3])
    # The oracle: `histocnn predict` over the same folder (P to 6 decimals), labels and patients from
    # the file names, scikit-learn.
    run_cli(cli, "predict", "--model", run / "model", "-o", tmp_path / "p.csv", synthetic_data)
    rows = read_csv(tmp_path / "p.csv")
    for r in rows:
        name = pathlib.PurePath(r["path"]).name
        r["patient"] = name.split("_idx5_")[0]
        r["label"] = name.rsplit("class", 1)[1].split(".")[0]
    assert len(rows) == 8 * 30
    expected_auc, expected_median, expected_patients = auc_and_median_per_patient(rows)
    assert abs(pooled - expected_auc) <= 0.0005 + 1e-6
    assert abs(median - expected_median) <= 0.0005 + 1e-6
    assert patients == expected_patients


def write_cv(folder, folds):
    """The fold-<k>/cv_fold.json files `histocnn cv` writes: per fold, scores by (group, stain shift)."""
    for fold, (stained, restained_01, restained_02, median, real) in folds.items():
        scores = [{"group": "all", "stain_shift": 0.0, "roc_auc": stained, "median_patient_auc": median},
                  {"group": "all", "stain_shift": 0.1, "roc_auc": restained_01, "median_patient_auc": 0.5},
                  {"group": "all", "stain_shift": 0.2, "roc_auc": restained_02, "median_patient_auc": 0.5},
                  {"group": "idc_real", "stain_shift": 0.0, "roc_auc": real, "median_patient_auc": 0.5},
                  {"group": "idc_real", "stain_shift": 0.2, "roc_auc": 0.0, "median_patient_auc": 0.5}]
        (folder / f"fold-{fold}").mkdir(parents=True)
        (folder / f"fold-{fold}" / "cv_fold.json").write_text(
            json.dumps({"fold": fold, "run_dir": str(folder / f"fold-{fold}"), "scores": scores}))


def test_cv_seeds_averages_seeds_and_counts_the_fold_seed_pairs_won(tmp_path):
    # Two seeds of a base and of a variant, on folds 1 and 2 (a third fold that one folder alone
    # finished is left out). The variant gains 0.02 as stained in three pairs and loses 0.02 in one.
    write_cv(tmp_path / "base-s1", {1: (0.80, 0.80, 0.70, 0.90, 0.75), 2: (0.90, 0.88, 0.80, 0.94, 0.85),
                                    3: (0.1, 0.1, 0.1, 0.1, 0.1)})
    write_cv(tmp_path / "base-s2", {1: (0.84, 0.82, 0.72, 0.92, 0.77), 2: (0.86, 0.86, 0.78, 0.92, 0.83)})
    write_cv(tmp_path / "var-s1", {1: (0.82, 0.80, 0.75, 0.90, 0.75), 2: (0.92, 0.88, 0.85, 0.94, 0.85)})
    write_cv(tmp_path / "var-s2", {1: (0.86, 0.82, 0.77, 0.92, 0.77), 2: (0.84, 0.86, 0.83, 0.92, 0.83)})
    proc = run_script("cv_seeds.py", "--variant", "base", tmp_path / "base-s1", tmp_path / "base-s2",
                      "--variant", "var", tmp_path / "var-s1", tmp_path / "var-s2")
    assert proc.returncode == 0, proc.stderr
    assert "Folds 1, 2;" in proc.stdout
    rows = table(proc.stdout)
    sd = statistics.stdev([0.80, 0.90])
    assert rows[0] == ["base", str(tmp_path / "base-s1"), f"0.850 +- {sd:.3f}", "0.840 +- 0.057", "0.750 +- 0.071",
                       "0.920 +- 0.028", "0.800 +- 0.071"]
    assert rows[2] == ["base", "mean of 2 seeds", "0.850", "0.840", "0.750", "0.920", "0.800"]
    assert rows[5] == ["var", "mean of 2 seeds", "0.860", "0.840", "0.800", "0.920", "0.800"]
    assert rows[-2] == ["difference", "+0.010", "+0.000", "+0.050", "+0.000", "+0.000"]
    assert rows[-1] == ["wins / losses", "3 / 1", "0 / 0", "4 / 0", "0 / 0", "0 / 0"]

    proc = run_script("cv_seeds.py", "--variant", "base", tmp_path / "nothing-here")
    assert proc.returncode != 0 and "no fold-*/cv_fold.json" in proc.stderr
    proc = run_script("cv_seeds.py", "--variant", "base")
    assert proc.returncode != 0 and "at least one cv folder" in proc.stderr


def test_restain_normalisation_shows_white_balance_cancelling_the_shift(synthetic_data):
    # The script imports the bindings: the ones this test runs with.
    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(histocnn.__file__).parents[1])}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "restain_normalisation.py"), str(synthetic_data),
                           "--patients", "4", "--every", "2", "--sigmas", "0.2"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {row[1]: [float(c) for c in row[2:]] for row in table(proc.stdout)}
    assert set(rows) == {"scale and shift", "scale alone", "shift alone"}
    none, plain, balanced, glass_alone = rows["shift alone"]
    assert none > 3 and balanced < plain / 2  # the glass takes the shift; plain Macenko reads it as stain
    # White balance alone takes most of it too (not all: a shift that lightens saturates the brightest
    # glass at 255, below which no percentile sees), but leaves the scaled stains as they are, which
    # Macenko maps back.
    assert glass_alone < 0.6 * none
    assert rows["scale alone"][3] > 2 * rows["scale alone"][2]
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "restain_normalisation.py"), str(ROOT / "docs")],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode != 0 and "no patches found under" in proc.stderr and "Traceback" not in proc.stderr


def test_glass_sample_size_compares_k_patches_with_the_whole_slide(synthetic_data):
    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(histocnn.__file__).parents[1])}
    script = str(ROOT / "bench" / "glass_sample_size.py")
    proc = subprocess.run([sys.executable, script, str(synthetic_data), "--patients", "4", "--sizes", "1", "8",
                           "30", "31", "--draws", "5"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {int(row[0]): [float(c) for c in row[1:]] for row in table(proc.stdout)}
    assert set(rows) == {1, 8, 30}  # 31 is more than a synthetic patient has: no row
    assert rows[1][0] == 4
    assert rows[8][1] <= rows[1][1]
    assert rows[30][1:] == [0, 0]  # all of a patient's patches, in any order: its own glass
    proc = subprocess.run([sys.executable, script, str(ROOT / "docs")], capture_output=True, text=True, timeout=60,
                          env=env)
    assert proc.returncode != 0 and "no patches found under" in proc.stderr and "Traceback" not in proc.stderr


def test_blas_threads_times_both_settings_and_skips_what_it_cannot_run(cli, synthetic_data):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "blas_threads.py"), "--cli", cli, "--data",
                           str(synthetic_data), "--repeats", "1", "--cases", "1", "3"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    recipe = next(line for line in lines if line.startswith("robust-cnn recipe"))
    *numbers, loss_one, slash, loss_many = recipe[52:].split()
    assert slash == "/" and all(float(n) > 0 for n in numbers) and len(numbers) == 6
    assert 0 < float(loss_one) < 2 and 0 < float(loss_many) < 2
    product = next(line for line in lines if line.startswith("a lone 2048"))
    assert "skipped" in product or float(product[52:].split()[0]) > 0
    lstm = next(line for line in lines if line.startswith("mobilenet_v2 frozen + lstm"))
    assert "skipped: needs --weights-dir" in lstm
    assert not any(line.startswith("study") for line in lines)  # case 2 was not asked for


def test_patient_influence_scores_the_fold_with_and_without_one_patient(tmp_path):
    # Fold 1: patient b's IDC patch scores below every negative; without b the fold is separable.
    write_predictions(tmp_path / "cv" / "fold-1" / "predictions_test.csv",
                      [("d/real/a/0/1.png", "a", 0, -1.0), ("d/real/a/1/2.png", "a", 1, 2.0),
                       ("d/real/b/1/3.png", "b", 1, -3.0), ("d/real/b/0/4.png", "b", 0, -4.0),
                       ("d/wide/c/1/5.png", "c", 1, 1.0), ("d/wide/c/0/6.png", "c", 0, -2.0)])
    write_predictions(tmp_path / "cv" / "fold-2" / "predictions_test.csv",
                      [("d/wide/e/0/7.png", "e", 0, 1.0), ("d/wide/e/1/8.png", "e", 1, -1.0)])
    proc = run_script("patient_influence.py", "--patient", "b", tmp_path / "cv")
    assert proc.returncode == 0, proc.stderr
    [row] = table(proc.stdout)
    assert row[1] == "fold-1"
    labels, logits = [0, 1, 1, 0, 1, 0], [-1.0, 2.0, -3.0, -4.0, 1.0, -2.0]
    assert float(row[2]) == round(roc_auc_score(labels, logits), 3)
    assert row[3] == "1.000" and row[4] == "2 of 6" and row[5] == "1 of 3" and row[6] == "1.000"
    assert row[7] == f"{1 / (1 + math.exp(3)):.2f}" and row[8] == "1.00"
    assert row[9] == f"real {1 / (1 + math.exp(-2)):.2f} (0.00); wide {1 / (1 + math.exp(-1)):.2f} (0.00)"
    assert row[10] == "0.500"  # fold 1 without b (1.000) and fold 2 (0.000)
    proc = run_script("patient_influence.py", "--patient", "z", tmp_path / "cv")
    assert proc.returncode != 0 and "patient z is in no fold" in proc.stderr


def grid_rows(patient, places, label_of, rng):
    """Kaggle-named patches of one patient at `places` (x, y), P noisy around their label."""
    rows = []
    for x, y in places:
        label = label_of(x, y)
        rows.append((f"d/{patient}/{label}/{patient}_idx5_x{x}_y{y}_class{label}.png", patient, label,
                     (1.5 if label else -1.5) + rng.normal(0, 1.5)))
    return rows


def test_context_heads_scores_smoothing_and_heads_fitted_on_all_or_complete_slides(tmp_path):
    import numpy as np
    rng = np.random.default_rng(3)
    full = [(x, y) for x in range(0, 400, 50) for y in range(0, 400, 50)]
    left = lambda x, y: int(x < 200)  # noqa: E731: a contiguous tumour region
    fold = tmp_path / "cv" / "fold-1"
    complete = grid_rows("c", full, left, rng)
    sampled = grid_rows("s", full[::5], lambda x, y: int(y < 200), rng)  # every fifth place: few neighbours
    write_predictions(fold / "predictions_validation.csv", complete + sampled)
    write_predictions(fold / "predictions_test.csv", grid_rows("t", full, left, rng))
    write_predictions(tmp_path / "only_c" / "predictions_validation.csv", complete)
    proc = run_script("context_heads.py", "--radius", "0,1", tmp_path / "cv")
    assert proc.returncode == 0, proc.stderr
    row, mean = table(proc.stdout)
    assert row[:4] == ["cv", "1", "2", "1 (64)"]
    # Radius 0 is the patch alone; validation's contiguous region chooses 1.
    assert row[5] == row[4]
    assert row[7] == row[6] + " (1)"
    row, mean = [r[:5] + r[6:7] + r[8:] for r in (row, mean)]
    test = histocnn.inference.load_predictions_csv(str(fold / "predictions_test.csv"))
    labels, p = [r.label for r in test.manifest.rows], np.array(test.p)
    assert float(row[4]) == round(roc_auc_score(labels, p), 3)
    # Smoothing by numpy: the mean over the 3x3 window of places.
    where = np.array([(r.x, r.y) for r in test.manifest.rows])
    smoothed = [p[(np.abs(where[:, 0] - x) <= 50) & (np.abs(where[:, 1] - y) <= 50)].mean() for x, y in where]
    assert float(row[5]) == round(roc_auc_score(labels, smoothed), 3)
    assert float(row[5]) > float(row[4])  # a contiguous region: context helps
    # The heads: fitted on every validation patient, and on the complete one alone.
    val = histocnn.inference.load_predictions_csv(str(fold / "predictions_validation.csv"))
    only_c = histocnn.inference.load_predictions_csv(str(tmp_path / "only_c" / "predictions_validation.csv"))
    for cell, fitted in ((row[6], val), (row[7], only_c)):
        head = histocnn.ContextModel.fit(fitted.manifest, list(fitted.p), [r.label for r in fitted.manifest.rows])
        assert float(cell) == round(roc_auc_score(labels, head.predict(test.manifest, list(test.p))), 3)
    assert mean[1] == "mean" and mean[4:] == [cell.split(" (")[0] for cell in row[4:]]
    (fold / "predictions_validation.csv").unlink()
    proc = run_script("context_heads.py", tmp_path / "cv")
    assert proc.returncode != 0 and "no predictions_validation.csv" in proc.stderr
