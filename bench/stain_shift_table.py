#!/usr/bin/env python3
"""Test AUC of finished runs as the test patients are restained more and more strongly.

For each run folder, the saved model is evaluated on its own test split (its manifest.csv) with
every test patient restained one way (histocnn.evaluate(stain_shift=sigma, seed=the run's seed):
one haematoxylin-eosin jitter per patient), for each sigma, and one markdown table is printed:
a row per run, a column per sigma (0 = the patches as they are).

    /usr/bin/python3 bench/stain_shift_table.py compare-runs/pretrained/runs/* compare-runs/scratch/runs/*
    /usr/bin/python3 bench/stain_shift_table.py --sigmas 0,0.1 runs/my-run

Imports the bindings from build/python (or PYTHONPATH); the run folders' data must still be
where they were trained from.
"""
import argparse
import json
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "build" / "python"))
import histocnn  # noqa: E402


def describe(options):
    m = options["model"]
    trainer = options["trainer"]
    weights = "ImageNet" if options.get("weights") else "scratch"
    if not m["freeze_backbone"]:
        mode = "all layers train"
    elif m["unfreeze_last"]:
        mode = f"last {m['unfreeze_last']} blocks train"
    else:
        mode = "frozen"
    a = trainer.get("augment", {})
    aug = []
    if a.get("enabled"):
        aug.append("flips")
        if a.get("rotation_degrees"):
            aug.append(f"rotation {a['rotation_degrees']:g}")
        if a.get("zoom_max", 1) > 1:
            aug.append(f"zoom {a['zoom_max']:g}")
        if a.get("stain_jitter"):
            aug.append(f"H&E jitter {a['stain_jitter']:g}")
        if a.get("brightness"):
            aug.append(f"brightness {a['brightness']:g}")
        if a.get("hue"):
            aug.append(f"HSV jitter (hue {a['hue']:g}, saturation {a.get('saturation', 0):g}, value "
                       f"{a.get('value', 0):g}, contrast {a.get('contrast', 0):g})")
    head = f"{trainer['optimizer']}, dropout {m['dropout']:g}" + (", head BN" if m["batch_norm"] else "")
    stain = options.get("stain_normalise", "none")
    stain = "" if stain == "none" else f", {stain} normalisation per {options.get('stain_fit', 'patch')}"
    return (f"{m['backbone']}, {weights}, {mode}, {options['image_size']} px, {trainer['epochs']} epochs, {head}, " +
            (" + ".join(aug) or "no augmentation") + stain)


def median_patient_auc(run, result):
    """The median of the test patients' own ROC-AUCs (patients with both classes)."""
    import statistics
    manifest = histocnn.train.load_patch_manifest("", os.fspath(run / "manifest.csv")).select_split("test")
    by_patient = {}
    for row, label, p in zip(manifest.rows, result.predictions.labels, result.predictions.p_positive):
        by_patient.setdefault(row.patient, ([], []))
        by_patient[row.patient][0].append(label)
        by_patient[row.patient][1].append(p)
    aucs = [histocnn.metrics.roc_auc(y, p) for y, p in by_patient.values() if 0 < sum(y) < len(y)]
    return statistics.median(aucs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders (each with options.json, manifest.csv, model/)")
    parser.add_argument("--sigmas", type=lambda t: [float(v) for v in t.split(",")], default=[0.0, 0.05, 0.1, 0.2],
                        help="comma-separated stain shift sigmas (default 0,0.05,0.1,0.2)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--per-patient", action="store_true",
                        help="also the median over test patients of each patient's own AUC, as stained (patients "
                             "with both classes): ranking within a patient, free of shifts between patients")
    args = parser.parse_args()
    print(f"# {sys.executable}, histocnn {histocnn.__version__}", file=sys.stderr)
    header = "| run | " + " | ".join(f"AUC, sigma {s:g}" for s in args.sigmas) + " | drop at the largest |"
    if args.per_patient:
        header += " median per-patient AUC |"
    lines = [header, "|---|" + "---:|" * (len(args.sigmas) + 1 + args.per_patient)]
    for run in map(pathlib.Path, args.runs):
        options = json.loads((run / "options.json").read_text())
        seed = options["trainer"]["seed"]
        aucs = []
        for sigma in args.sigmas:
            result = histocnn.evaluate(os.fspath(run / "model"), manifest=os.fspath(run / "manifest.csv"),
                                       split="test", device=args.device, stain_shift=sigma, seed=seed)
            aucs.append(result.metrics.roc_auc)
            print(f"{run.name} sigma {sigma:g}: AUC {aucs[-1]:.4f}", file=sys.stderr)
            if sigma == 0:
                as_stained = result
        line = f"| {describe(options)} | " + " | ".join(f"{a:.3f}" for a in aucs) + f" | {aucs[-1] - aucs[0]:+.3f} |"
        if args.per_patient:
            line += f" {median_patient_auc(run, as_stained):.3f} |"
        lines.append(line)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
