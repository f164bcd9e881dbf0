#!/usr/bin/env python3
"""Ensembles of saved runs, scored on the test patients they share.

Each run folder's predictions_test.csv (path, patient, label, p_positive) is read; the patches
every run scored are kept, each run's P is turned into a logit, and the mean logit of each named
combination is scored by ROC-AUC (scikit-learn's roc_auc_score), beside each run alone:

    /usr/bin/python3 bench/ensemble_predictions.py cv/robust/fold-1 cv/mnv2/fold-1 cv/macenko/fold-1

With --cv the arguments are cross-validation folders (`histocnn cv` output): each fold they all
finished is scored so, each run alone and the mean logit of all, with the mean +- sd over folds:

    /usr/bin/python3 bench/ensemble_predictions.py --cv cv/robust cv/seed1

Needs only Debian's python3-sklearn; no histocnn bindings.
"""
import argparse
import csv
import itertools
import math
import pathlib
import statistics
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


class Shared:
    """The runs' predictions of the test patches they all scored."""

    def __init__(self, runs):
        self.preds = [load(r) for r in runs]
        self.patches = sorted(set.intersection(*(set(p) for p in self.preds)))
        if not self.patches:
            sys.exit(f"{', '.join(map(str, runs))}: the runs share no test patch: they were not tested on the "
                     "same patients")
        for p in self.preds[1:]:
            if any(p[k][0] != self.preds[0][k][0] for k in self.patches):
                sys.exit("the runs disagree on a label: they were not made from the same data")
        self.labels = [self.preds[0][k][0] for k in self.patches]

    def auc(self, combo):
        """ROC-AUC of the mean logit of the runs numbered in combo."""
        scores = [sum(logit(self.preds[i][k][1]) for i in combo) / len(combo) for k in self.patches]
        return roc_auc_score(self.labels, scores)


def score_runs(runs):
    shared = Shared(runs)
    print(f"{len(shared.patches)} test patches shared by {len(runs)} runs")
    print("| runs | ROC-AUC |\n|---|---:|")
    for size in range(1, len(runs) + 1):
        for combo in itertools.combinations(range(len(runs)), size):
            print(f"| {' + '.join(runs[i] for i in combo)} | {shared.auc(combo):.4f} |")


def score_folds(cvs):
    folds = set.intersection(*({p.parent.name for p in pathlib.Path(cv).glob("fold-*/predictions_test.csv")}
                               for cv in cvs))
    if not folds:
        sys.exit(f"{', '.join(cvs)}: no fold-*/predictions_test.csv that every folder has; pass `histocnn cv` "
                 "output folders")
    combos = [(i,) for i in range(len(cvs))] + [tuple(range(len(cvs)))]
    print("| fold | " + " | ".join(cvs) + " | mean logit of all |\n|---|" + "---:|" * len(combos))
    aucs = []
    for fold in sorted(folds, key=lambda f: int(f.split("-")[1])):
        shared = Shared([pathlib.Path(cv) / fold for cv in cvs])
        aucs.append([shared.auc(c) for c in combos])
        print(f"| {fold} | " + " | ".join(f"{a:.4f}" for a in aucs[-1]) + " |")
    cells = []
    for column in zip(*aucs):
        sd = statistics.stdev(column) if len(column) > 1 else 0.0
        cells.append(f"{statistics.mean(column):.4f} +- {sd:.4f}")
    print("| mean +- sd | " + " | ".join(cells) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders with predictions_test.csv, tested on the same patients "
                        "(with --cv: cross-validation folders with the same folds)")
    parser.add_argument("--cv", action="store_true", help="score each fold the cross-validation folders share")
    args = parser.parse_args()
    if args.cv:
        score_folds(args.runs)
    else:
        score_runs(args.runs)


if __name__ == "__main__":
    main()
