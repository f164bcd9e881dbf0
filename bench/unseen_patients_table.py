#!/usr/bin/env python3
"""Saved models on patients they never saw: pooled AUC, and the median of each patient's own AUC.

For each run folder, its model is evaluated on every patch of a data folder (patients that were in
none of its splits), as stained and restained per patient at each sigma, and one markdown row is
printed. The pooled AUC mixes every patient's patches, so it falls when scores shift from patient
to patient; the median per-patient AUC measures ranking within a patient alone. Their gap is what
per-slide stain normalisation (or per-slide calibration) can close.

    /usr/bin/python3 bench/unseen_patients_table.py --data ../shared/data/idc_wide runs/*
    /usr/bin/python3 bench/unseen_patients_table.py --data ../shared/data/idc_wide --stain-fit patch runs/x

Imports the bindings from build/python (or PYTHONPATH).
"""
import argparse
import json
import os
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "build" / "python"))
import histocnn  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from stain_shift_table import describe  # noqa: E402


def per_patient_auc(patients, labels, scores):
    groups = {}
    for patient, y, p in zip(patients, labels, scores):
        groups.setdefault(patient, ([], []))
        groups[patient][0].append(y)
        groups[patient][1].append(p)
    aucs = [histocnn.metrics.roc_auc(y, p) for y, p in groups.values() if 0 < sum(y) < len(y)]
    return statistics.median(aucs), len(aucs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders (each with options.json and model/)")
    parser.add_argument("--data", required=True, help="folder of patches in the Kaggle layout, unseen patients")
    parser.add_argument("--sigmas", type=lambda t: [float(v) for v in t.split(",")], default=[0.0, 0.2],
                        help="comma-separated restaining sigmas (default 0,0.2)")
    parser.add_argument("--stain-fit", default="", choices=["", "patch", "slide"],
                        help="override how a normalising model fits source statistics")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    print(f"# {sys.executable}, histocnn {histocnn.__version__}", file=sys.stderr)
    patients = [r.patient for r in histocnn.train.load_patch_manifest(args.data, "").select_split("all").rows]
    header = ("| run | " + " | ".join(f"pooled AUC, sigma {s:g}" for s in args.sigmas) +
              f" | median per-patient AUC, sigma {args.sigmas[0]:g} | patients |")
    lines = [header, "|---|" + "---:|" * (len(args.sigmas) + 2)]
    for run in map(pathlib.Path, args.runs):
        options = json.loads((run / "options.json").read_text())
        aucs, median, n = [], None, 0
        for sigma in args.sigmas:
            r = histocnn.evaluate(os.fspath(run / "model"), data_dir=args.data, split="all", device=args.device,
                                  stain_shift=sigma, seed=options["trainer"]["seed"], stain_fit=args.stain_fit)
            aucs.append(r.metrics.roc_auc)
            if median is None:
                median, n = per_patient_auc(patients, r.predictions.labels, r.predictions.p_positive)
            print(f"{run.name} sigma {sigma:g}: AUC {aucs[-1]:.4f}", file=sys.stderr)
        fit = f" (evaluated per {args.stain_fit})" if args.stain_fit else ""
        lines.append(f"| {describe(options)}{fit} | " + " | ".join(f"{a:.3f}" for a in aucs) + f" | {median:.3f} | {n} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
