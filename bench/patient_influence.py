#!/usr/bin/env python3
"""How much one test patient weighs on a cross-validation, and how its IDC patches are scored.

For each cross-validation folder given, the fold whose test patients include --patient is found
and printed: its pooled patch-level ROC-AUC (scikit-learn's roc_auc_score) with and without the
patient, the patient's share of its patches and IDC patches, the patient's ROC-AUC within itself,
the mean P and the fraction below 0.1 of its IDC patches against the other patients' of each data
folder, and the mean over all folds of the AUC with the patient left out:

    /usr/bin/python3 bench/patient_influence.py --patient 9077 <cv>/recipe-s42 <cv>/recipe-s1

Reads <cv>/fold-*/predictions_test.csv (path, patient, label, p_positive); a patch's data folder is
the path component before its patient's folder. Needs only Debian's python3-numpy and
python3-sklearn; no histocnn bindings.
"""
import argparse
import pathlib
import sys

import numpy as np
from sklearn.metrics import roc_auc_score

from predictions import fold_predictions, read_predictions


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patient", required=True, help="the patient id")
    parser.add_argument("cv", nargs="+", type=pathlib.Path, help="cross-validation output folders")
    args = parser.parse_args()
    print("| cross-validation | fold | AUC | without the patient | its patches | its IDC patches | AUC within it "
          "| mean P of its IDC patches | below 0.1 | mean P of other IDC patches, by folder (below 0.1) "
          "| mean of the folds without it |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for cv in args.cv:
        found, without = None, []
        for f in fold_predictions(cv):
            t = read_predictions(f)
            patients, y, p, folders = t["patient"], t["label"], t["p"], t["folder"]
            mine = patients == args.patient
            without.append(roc_auc_score(y[~mine], p[~mine]))
            if mine.any():
                found = (f.parent.name, roc_auc_score(y, p), without[-1], mine, y, p, folders)
        if found is None:
            sys.exit(f"{cv}: patient {args.patient} is in no fold's test patients")
        fold, auc, auc_without, mine, y, p, folders = found
        pos = mine & (y == 1)
        inside = roc_auc_score(y[mine], p[mine]) if len(set(y[mine])) == 2 else float("nan")
        others = "; ".join(f"{name or '?'} {p[sel].mean():.2f} ({(p[sel] < 0.1).mean():.2f})"
                           for name in sorted(set(folders))
                           for sel in [~mine & (y == 1) & (folders == name)] if sel.any())
        print(f"| {cv} | {fold} | {auc:.3f} | {auc_without:.3f} | {mine.sum()} of {len(y)} | {pos.sum()} of "
              f"{(y == 1).sum()} | {inside:.3f} | {p[pos].mean():.2f} | {(p[pos] < 0.1).mean():.2f} | {others} | "
              f"{np.mean(without):.3f} |")


if __name__ == "__main__":
    main()
