"""Reading the test predictions a `histocnn cv` folder holds, for the bench scripts beside this file.

    from predictions import fold_predictions, read_predictions
    for path in fold_predictions(cv_dir):
        table = read_predictions(path)   # numpy arrays: patient, label, p, folder

Needs only Debian's python3-numpy; no histocnn bindings.
"""
import csv
import pathlib
import sys

import numpy as np


def fold_predictions(cv_dir):
    """The folds' predictions_test.csv files of a cross-validation folder, sorted by name; exits with a
    message naming the folder when it has none."""
    files = sorted(pathlib.Path(cv_dir).glob("fold-*/predictions_test.csv"))
    if not files:
        sys.exit(f"{cv_dir}: no fold-*/predictions_test.csv; pass the folder `histocnn cv` wrote")
    return files


def read_predictions(path):
    """predictions_test.csv (path, patient, label, p_positive) as numpy arrays: patient, label, p
    and folder, the data folder of each patch (the path component before its patient's folder; ""
    when the path has none)."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    parts = [pathlib.PurePath(r["path"]).parts for r in rows]
    folders = [p[p.index(r["patient"]) - 1] if r["patient"] in p[1:] else "" for p, r in zip(parts, rows)]
    return {
        "patient": np.array([r["patient"] for r in rows]),
        "label": np.array([int(r["label"]) for r in rows]),
        "p": np.array([float(r["p_positive"]) for r in rows]),
        "folder": np.array(folders),
    }
