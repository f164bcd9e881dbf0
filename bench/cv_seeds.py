#!/usr/bin/env python3
"""Recipes compared over cross-validations repeated with several seeds.

Each `histocnn cv` folder's finished folds (fold-<k>/cv_fold.json, so that a cross-validation
stopped part-way counts with the folds it finished) give the patch-level ROC-AUC of their test
patients as stained and restained, the median per-patient AUC, and the AUC of each data folder's patients. A
variant is one or more cv folders of the same recipe with different seeds (the same test folds);
this prints each folder's means over its folds, the mean over the variant's seeds, and, for every
variant after the first, its difference from the first and how many fold-seed pairs it wins:

    /usr/bin/python3 bench/cv_seeds.py --variant recipe cv/robust-cnn cv/seed1 \\
        --variant he02 cv/he02-s42 cv/he02-s1

Folders are paired with the first variant's in the order given (the first with the first): give
the seeds in the same order. Needs only Python's standard library; no histocnn bindings.
"""
import argparse
import json
import pathlib
import statistics
import sys

# (column, group, stain shift, field of cv.json's scores)
NUMBERS = [("as stained", "all", 0.0, "roc_auc"), ("restained 0.1", "all", 0.1, "roc_auc"),
           ("restained 0.2", "all", 0.2, "roc_auc"), ("median per-patient AUC", "all", 0.0, "median_patient_auc")]


def load(folder):
    """{fold: {column: value}} of one cv folder, with a column per data folder's patients. Each
    finished fold's fold-<k>/cv_fold.json is read (cv.json holds the same once every fold is done),
    so a cross-validation stopped part-way counts with the folds it finished."""
    paths = sorted(pathlib.Path(folder).glob("fold-*/cv_fold.json"))
    if not paths:
        sys.exit(f"{folder}: no fold-*/cv_fold.json; pass `histocnn cv` output folders")
    results = []
    for path in paths:
        try:
            result = json.loads(path.read_text())
        except ValueError as e:
            sys.exit(f"{path}: not JSON ({e})")
        if not isinstance(result, dict) or "fold" not in result or "scores" not in result:
            sys.exit(f"{path}: not a cv_fold.json written by `histocnn cv` (it needs fold and scores)")
        results.append(result)
    folds = {}
    for r in results:
        scores = {(s["group"], s["stain_shift"]): s for s in r["scores"]}
        row = {}
        for name, group, shift, field in NUMBERS:
            if (group, shift) in scores:
                row[name] = scores[(group, shift)][field]
        for (group, shift), s in scores.items():
            if group != "all" and shift == 0.0:
                row[f"{group} patients"] = s["roc_auc"]
        folds[r["fold"]] = row
    return folds


def mean_sd(values):
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", nargs="+", action="append", required=True, metavar=("NAME", "CV_FOLDER"),
                        help="a name, then the variant's cv folders (one per seed)")
    args = parser.parse_args()
    variants = []
    for v in args.variant:
        if len(v) < 2:
            sys.exit(f"--variant {v[0]}: give the variant's name, then at least one cv folder")
        variants.append((v[0], v[1:], [load(f) for f in v[1:]]))
    # Every number over the folds every folder finished, so that all means cover the same patients.
    folds = sorted(set.intersection(*(set(f) for _, _, runs in variants for f in runs)))
    if not folds:
        sys.exit("the folders share no finished fold")
    everything = [run for _, _, runs in variants for run in runs]
    names = [n for n, *_ in NUMBERS]
    groups = sorted({c for run in everything for row in run.values() for c in row} - set(names))
    columns = [c for c in names + groups if all(c in run[k] for run in everything for k in folds)]
    print(f"Folds {', '.join(map(str, folds))}; mean +- sd over the folds, then the mean over each variant's seeds.\n")
    print("| variant | cv folder | " + " | ".join(columns) + " |\n|---|---|" + "---:|" * len(columns))
    seed_means = {}
    for name, folders, runs in variants:
        per_folder = []
        for folder, run in zip(folders, runs):
            stats = [mean_sd([run[k][c] for k in folds]) for c in columns]
            per_folder.append([m for m, _ in stats])
            print(f"| {name} | {folder} | " + " | ".join(f"{m:.3f} +- {s:.3f}" for m, s in stats) + " |")
        seed_means[name] = [statistics.mean(c) for c in zip(*per_folder)]
        if len(runs) > 1:
            print(f"| {name} | mean of {len(runs)} seeds | " + " | ".join(f"{m:.3f}" for m in seed_means[name]) + " |")
    base_name, base_folders, base_runs = variants[0]
    for name, folders, runs in variants[1:]:
        pairs = list(zip(base_runs, runs))
        print(f"\n{name} against {base_name}: the difference of the seed means, and the fold-seed pairs "
              f"(folder 1 with folder 1, ...: {len(pairs)} seed pairs x {len(folds)} folds) it wins / loses")
        print("| | " + " | ".join(columns) + " |\n|---|" + "---:|" * len(columns))
        print("| difference | " + " | ".join(f"{b - a:+.3f}" for a, b in zip(seed_means[base_name], seed_means[name]))
              + " |")
        cells = []
        for c in columns:
            diffs = [run[k][c] - base[k][c] for base, run in pairs for k in folds]
            cells.append(f"{sum(d > 0 for d in diffs)} / {sum(d < 0 for d in diffs)}")
        print("| wins / losses | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
