#!/usr/bin/env python3
"""Per-slide score calibration, tried on the folds of a cross-validation.

Each test patient's logits are shifted (or standardised) by statistics of that patient's own
patches, as a calibration per slide would do when a whole slide is scored at once; the pooled
patch-level ROC-AUC (scikit-learn's roc_auc_score) of each fold is printed beside the uncalibrated
one, and the mean over the folds:

    /usr/bin/python3 bench/patient_calibration.py <cv>/robust-cnn

Reads <cv>/fold-*/predictions_test.csv (path, patient, label, p_positive). Needs only Debian's
python3-numpy and python3-sklearn; no histocnn bindings.
"""
import argparse
import csv
import pathlib
import sys

import numpy as np
from sklearn.metrics import roc_auc_score

METHODS = {
    "minus median": lambda z: z - np.median(z),
    "minus 75th percentile": lambda z: z - np.quantile(z, 0.75),
    "minus 90th percentile": lambda z: z - np.quantile(z, 0.90),
    "z-score": lambda z: (z - z.mean()) / (z.std() + 1e-6),
}


def load(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    patients = np.array([r["patient"] for r in rows])
    labels = np.array([int(r["label"]) for r in rows])
    p = np.clip(np.array([float(r["p_positive"]) for r in rows]), 1e-6, 1 - 1e-6)
    return patients, labels, np.log(p / (1 - p))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cv_dir", help="a histocnn cv output folder (with fold-*/predictions_test.csv)")
    args = parser.parse_args()
    folds = sorted(pathlib.Path(args.cv_dir).glob("fold-*/predictions_test.csv"))
    if not folds:
        sys.exit(f"{args.cv_dir}: no fold-*/predictions_test.csv; pass the folder `histocnn cv` wrote")
    names = ["as predicted", *METHODS]
    print("| fold | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names))
    table = []
    for path in folds:
        patients, labels, z = load(path)
        row = [roc_auc_score(labels, z)]
        for method in METHODS.values():
            calibrated = z.copy()
            for q in np.unique(patients):
                calibrated[patients == q] = method(z[patients == q])
            row.append(roc_auc_score(labels, calibrated))
        table.append(row)
        print(f"| {path.parent.name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    print("| mean | " + " | ".join(f"{v:.3f}" for v in np.mean(table, axis=0)) + " |")


if __name__ == "__main__":
    main()
