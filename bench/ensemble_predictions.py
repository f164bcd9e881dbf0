#!/usr/bin/env python3
"""Ensembles of saved runs, scored on the test patients they share.

Each run folder's predictions_test.csv (path, patient, label, p_positive) is read; the patches
every run scored are kept, each run's P is turned into a logit, and the mean logit of each named
combination is scored by ROC-AUC (scikit-learn's roc_auc_score), beside each run alone:

    /usr/bin/python3 bench/ensemble_predictions.py cv/robust/fold-1 cv/mnv2/fold-1 cv/macenko/fold-1

Needs only Debian's python3-sklearn; no histocnn bindings.
"""
import argparse
import csv
import itertools
import math
import pathlib
import sys

from sklearn.metrics import roc_auc_score


def load(run):
    path = pathlib.Path(run) / "predictions_test.csv"
    if not path.is_file():
        sys.exit(f"{path}: not found; pass run folders of finished runs (each writes predictions_test.csv)")
    # A patch is its patient and file name: the paths are relative to each run's manifest folder,
    # which differs between runs made in different output folders.
    with open(path) as f:
        return {(r["patient"], pathlib.PurePosixPath(r["path"]).name): (int(r["label"]), float(r["p_positive"]))
                for r in csv.DictReader(f)}


def logit(p, eps=1e-6):
    p = min(max(p, eps), 1 - eps)
    return math.log(p / (1 - p))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders with predictions_test.csv, tested on the same patients")
    args = parser.parse_args()
    preds = [load(r) for r in args.runs]
    common = sorted(set.intersection(*(set(p) for p in preds)))
    if not common:
        sys.exit("the runs share no test patch: they were not tested on the same patients")
    for p in preds[1:]:
        if any(p[k][0] != preds[0][k][0] for k in common):
            sys.exit("the runs disagree on a label: they were not made from the same data")
    labels = [preds[0][k][0] for k in common]
    print(f"{len(common)} test patches shared by {len(args.runs)} runs")
    print("| runs | ROC-AUC |\n|---|---:|")
    for size in range(1, len(args.runs) + 1):
        for combo in itertools.combinations(range(len(args.runs)), size):
            scores = [sum(logit(preds[i][k][1]) for i in combo) / size for k in common]
            name = " + ".join(args.runs[i] for i in combo)
            print(f"| {name} | {roc_auc_score(labels, scores):.4f} |")


if __name__ == "__main__":
    main()
