#!/usr/bin/env python3
"""Spatial context on a cross-validation's test patients: smoothing against the learned head.

For each fold of each cross-validation folder given, prints the pooled patch-level ROC-AUC
(scikit-learn's roc_auc_score) of its test patients with the patch alone, smoothed over the slide
at each --radius (the library's smooth_over_neighbours, as `histocnn cv --context`) and at the
radius among them that scores best on the fold's validation patients, and with the learned context
head (histocnn.ContextModel) fitted on the fold's validation predictions two ways:
on every validation patient (as training fits context_model.json), and only on the validation
patients whose slides are complete around their patches (mean fraction of the 8 neighbouring
places holding a patch at least --min-presence; a sampled patient has few neighbours):

    PYTHONPATH=build/python /usr/bin/python3 bench/context_heads.py <cv>/recipe-s42

Reads <cv>/fold-*/predictions_validation.csv and predictions_test.csv (path, patient, label,
p_positive; x and y from the Kaggle file names). Needs the histocnn bindings and python3-sklearn.
"""
import argparse
import pathlib
import sys

import numpy as np
from sklearn.metrics import roc_auc_score

import histocnn

inference = histocnn.inference


def labels_of(predictions):
    return [r.label for r in predictions.manifest.rows]


def complete_patients(predictions, min_presence):
    """The patients whose patches have, on average, at least min_presence of their 8 neighbours."""
    column = inference.context_feature_names().index("neighbour_presence")
    presence = inference.context_features(predictions.manifest, list(predictions.p))[:, column]
    patients = np.array([r.patient for r in predictions.manifest.rows])
    return sorted(p for p in set(patients) if presence[patients == p].mean() >= min_presence)


def fit_on(predictions, patients):
    """A ContextModel fitted on the predictions of the patients in `patients` only."""
    keep = [i for i, r in enumerate(predictions.manifest.rows) if r.patient in patients]
    rows = [predictions.manifest.rows[i] for i in keep]
    manifest = histocnn.data.Manifest(predictions.manifest.root, rows)
    return histocnn.ContextModel.fit(manifest, [predictions.p[i] for i in keep], [r.label for r in rows])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cv", nargs="+", type=pathlib.Path, help="cross-validation output folders")
    parser.add_argument("--radius", type=lambda text: [int(r) for r in text.split(",")], default=[1, 2, 3],
                        help="smoothing radii, comma-separated (default 1,2,3)")
    parser.add_argument("--min-presence", type=float, default=0.3,
                        help="a validation patient is complete at this mean neighbour presence (default 0.3)")
    args = parser.parse_args()
    smooth_names = [f"smoothed, R {r}" for r in args.radius]
    print("| cross-validation | fold | validation patients | complete (patches) | patch alone | "
          + " | ".join(smooth_names) + " | smoothed, R chosen on validation (R) | head, all validation "
          "| head, complete validation slides |")
    print("|---|---:|---:|---:|---:|" + "---:|" * len(smooth_names) + "---:|---:|---:|")
    for cv in args.cv:
        folds = sorted(cv.glob("fold-*/predictions_test.csv"))
        if not folds:
            sys.exit(f"{cv}: no fold-*/predictions_test.csv")
        means = []
        for test_csv in folds:
            val_csv = test_csv.parent / "predictions_validation.csv"
            if not val_csv.exists():
                sys.exit(f"{test_csv.parent}: no predictions_validation.csv to fit a head on")
            test = inference.load_predictions_csv(str(test_csv))
            val = inference.load_predictions_csv(str(val_csv))
            y = labels_of(test)
            scores = [roc_auc_score(y, test.p)]
            smoothed = [roc_auc_score(y, inference.smooth_over_neighbours(test.manifest, list(test.p), r))
                        for r in args.radius]
            on_val = [roc_auc_score(labels_of(val), inference.smooth_over_neighbours(val.manifest, list(val.p), r))
                      for r in args.radius]
            chosen = int(np.argmax(on_val))  # the first of equals: the smallest radius
            scores += smoothed + [smoothed[chosen]]
            head = histocnn.ContextModel.fit(val.manifest, list(val.p), labels_of(val))
            scores.append(roc_auc_score(y, head.predict(test.manifest, list(test.p))))
            complete = complete_patients(val, args.min_presence)
            patches = sum(1 for r in val.manifest.rows if r.patient in complete)
            scores.append(roc_auc_score(y, fit_on(val, complete).predict(test.manifest, list(test.p)))
                          if complete else float("nan"))
            means.append(scores)
            cells = [f"{s:.3f}" for s in scores]
            cells[1 + len(smoothed)] += f" ({args.radius[chosen]})"
            print(f"| {cv.name} | {test_csv.parent.name.removeprefix('fold-')} | {len(val.manifest.patients())} | "
                  f"{len(complete)} ({patches}) | " + " | ".join(cells) + " |")
        print(f"| {cv.name} | mean | | | " + " | ".join(f"{s:.3f}" for s in np.nanmean(means, axis=0)) + " |")


if __name__ == "__main__":
    main()
