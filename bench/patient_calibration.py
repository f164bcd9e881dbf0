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

import numpy as np
from sklearn.metrics import roc_auc_score

from predictions import fold_predictions, read_predictions

METHODS = {
    "minus median": lambda z: z - np.median(z),
    "minus 75th percentile": lambda z: z - np.quantile(z, 0.75),
    "minus 90th percentile": lambda z: z - np.quantile(z, 0.90),
    "z-score": lambda z: (z - z.mean()) / (z.std() + 1e-6),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cv_dir", help="a histocnn cv output folder (with fold-*/predictions_test.csv)")
    args = parser.parse_args()
    folds = fold_predictions(args.cv_dir)
    names = ["as predicted", *METHODS]
    print("| fold | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names))
    table = []
    for path in folds:
        t = read_predictions(path)
        patients, labels = t["patient"], t["label"]
        p = np.clip(t["p"], 1e-6, 1 - 1e-6)
        z = np.log(p / (1 - p))
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
