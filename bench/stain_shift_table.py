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
    head = f"{trainer['optimizer']}, dropout {m['dropout']:g}" + (", head BN" if m["batch_norm"] else "")
    return (f"{m['backbone']}, {weights}, {mode}, {options['image_size']} px, {trainer['epochs']} epochs, {head}, " +
            (" + ".join(aug) or "no augmentation"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders (each with options.json, manifest.csv, model/)")
    parser.add_argument("--sigmas", type=lambda t: [float(v) for v in t.split(",")], default=[0.0, 0.05, 0.1, 0.2],
                        help="comma-separated stain shift sigmas (default 0,0.05,0.1,0.2)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    print(f"# {sys.executable}, histocnn {histocnn.__version__}", file=sys.stderr)
    header = "| run | " + " | ".join(f"AUC, sigma {s:g}" for s in args.sigmas) + " | drop at the largest |"
    lines = [header, "|---|" + "---:|" * (len(args.sigmas) + 1)]
    for run in map(pathlib.Path, args.runs):
        options = json.loads((run / "options.json").read_text())
        seed = options["trainer"]["seed"]
        aucs = []
        for sigma in args.sigmas:
            result = histocnn.evaluate(os.fspath(run / "model"), manifest=os.fspath(run / "manifest.csv"),
                                       split="test", device=args.device, stain_shift=sigma, seed=seed)
            aucs.append(result.metrics.roc_auc)
            print(f"{run.name} sigma {sigma:g}: AUC {aucs[-1]:.4f}", file=sys.stderr)
        lines.append(f"| {describe(options)} | " + " | ".join(f"{a:.3f}" for a in aucs) +
                     f" | {aucs[-1] - aucs[0]:+.3f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
