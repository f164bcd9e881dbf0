"""The study's figures through the command-line tool: the class distribution of `data split`, the
error gallery of a run's report, and the best run and bar charts of `compare`."""
import csv
import json
import os
import re
import struct
import subprocess

from conftest import run_cli


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_data_split_draws_the_class_distribution_of_split_csv(cli, synthetic_data, tmp_path):
    out = tmp_path / "split.csv"
    proc = run_cli(cli, "data", "split", synthetic_data, "-o", out, "--balance", 60)
    figure = tmp_path / "split_distribution.png"
    assert f"-> {figure}" in proc.stdout
    assert png_size(figure) == (140 + 130 * 5, 480)

    line = next(l for l in proc.stdout.splitlines() if l.startswith("class distribution"))
    drawn = {name: (int(neg), int(pos)) for name, neg, pos in re.findall(r" ([a-z ]+?) (\d+)/(\d+);", line)}
    rows = read_csv(out)
    patches = list(synthetic_data.glob("*/*/*.png"))
    before = (sum(p.parent.name == "0" for p in patches), sum(p.parent.name == "1" for p in patches))
    assert drawn["before balancing"] == before
    assert drawn["after balancing"] == (60, 60)
    for split in ("train", "val", "test"):
        labels = [r["label"] for r in rows if r["split"] == split]
        assert drawn[split] == (labels.count("0"), labels.count("1")), split


def test_data_split_of_a_folder_writes_into_the_working_folder_not_the_data(cli, synthetic_data, tmp_path):
    before = sorted(p.name for p in synthetic_data.iterdir())
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([os.path.abspath(cli), "data", "split", str(synthetic_data)], capture_output=True, text=True, timeout=600,
                          cwd=work, env={**os.environ, "HISTOCNN_PROGRESS": "0"})
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in synthetic_data.iterdir()) == before  # the data folder is left as it was
    rows = read_csv(work / "split.csv")
    assert rows and all((work / r["path"]).is_file() for r in rows)  # paths resolve from the CSV's folder
    assert (work / "split_distribution.png").is_file()


def test_the_run_report_lists_the_most_confident_errors(cli, synthetic_data, tmp_path):
    run_cli(cli, "train", "--data", synthetic_data, "--out", tmp_path, "--name", "r", "--backbone", "simple_cnn",
            "--unfreeze", "--image-size", 32, "--epochs", 1, "--hidden1", 16, "--hidden2", 8, "--seed", 4,
            "--stain-shift", 0, "--no-tensorboard")
    run = tmp_path / "r"
    threshold = json.loads((run / "metrics.json").read_text())["threshold"]
    predictions = read_csv(run / "predictions_test.csv")
    # Independently: most confident first, ties in file order (Python's sort is stable).
    fp = [r for r in predictions if r["label"] == "0" and float(r["p_positive"]) >= threshold]
    fn = [r for r in predictions if r["label"] == "1" and float(r["p_positive"]) < threshold]
    fp.sort(key=lambda r: -float(r["p_positive"]))
    fn.sort(key=lambda r: float(r["p_positive"]))
    assert fp or fn, "a one-epoch model makes mistakes on these patches"

    report = (run / "report.txt").read_text()
    section = report[report.index("Most confident errors on the test split"):]
    section = section[:section.index("(drawn in plots/test_errors.png)")]
    fp_part, fn_part = section.split("False negatives", 1)
    listed = lambda part: re.findall(r"^\s+\d+\s+([0-9.]+)\s+(\S+)\s+(\S+)$", part, re.M)
    for part, expected, total in ((fp_part, fp, len(fp)), (fn_part, fn, len(fn))):
        got = listed(part)
        assert [path for _, _, path in got] == [r["path"] for r in expected[:8]]
        assert [patient for _, patient, _ in got] == [r["patient"] for r in expected[:8]]
        assert [float(p) for p, _, _ in got] == [round(float(r["p_positive"]), 4) for r in expected[:8]]
        assert f"{len(got)} shown of {total}" in part
    width, height = png_size(run / "plots" / "test_errors.png")
    assert width == 2 * 16 + 8 * 112 + 7 * 12
    assert height > 2 * 112


def test_compare_names_the_best_run_and_draws_the_figures(cli, synthetic_data, tmp_path):
    config = tmp_path / "compare.json"
    config.write_text(json.dumps({
        "data_dir": str(synthetic_data), "output_dir": str(tmp_path / "out"),
        "base": {"backbone": "simple_cnn", "freeze_backbone": False, "epochs": 1, "image_size": 32,
                 "stain_shift": 0, "tensorboard": False},
        "grid": {"hidden1": [8, 64]}}))
    proc = run_cli(cli, "compare", config)
    rows = read_csv(tmp_path / "out" / "results.csv")
    assert len(rows) == 2
    for r in rows:  # the unrounded numbers
        test = json.loads((tmp_path / "out" / "runs" / r["run"] / "metrics.json").read_text())["test"]
        r["auc"], r["test_accuracy"] = test["roc_auc"], test["accuracy"]
    # Highest AUC; ties: higher accuracy, then the earlier run (max keeps the first of equals).
    best = max(rows, key=lambda r: (r["auc"], r["test_accuracy"]))
    line = next(l for l in proc.stdout.splitlines() if l.startswith("Best run (highest test AUC"))
    assert f": {best['label']} ({best['run']}), test AUC {best['auc']:.3f}" in line
    assert line in (tmp_path / "out" / "results.md").read_text()
    for name in ("accuracy", "precision", "recall", "f1", "auc", "loss"):
        assert png_size(tmp_path / "out" / f"test_{name}.png") == (640, 520), name
    assert png_size(tmp_path / "out" / "size_vs_accuracy.png") == (640, 520)
