#!/usr/bin/env python3
"""How many patches a slide's glass needs: white balance's estimate from k random patches against the whole slide's.

White balance (`--stain-normalise white-balance`, and Macenko's `--stain-white-balance`) takes a
slide's glass as each channel's 1st percentile of optical density over its non-white pixels. A
request of one patch is mostly tissue, and its 1st percentile is pale tissue rather than glass.
For each patient of a Kaggle-layout folder this draws k of its patches at random (`--draws` times
for each k) and prints the median, over the patients, of the median error |glass(k patches) -
glass(all patches)| (the largest channel, in optical density), beside the spread of the whole
slides' glass between patients, which is what white balance corrects:

    /usr/bin/python3 bench/glass_sample_size.py <data>/idc_real --patients 12

The sources below which histocnn takes the reference's glass instead (eight 50-pixel patches'
worth of non-white pixels, src/data/stain.cpp) come from this table: there the error is one 8-bit
level near white, below the patients' spread. The estimate here is histocnn's own (a reference
fit, which never falls back). Uses Debian's python3 with numpy and Pillow and the histocnn
bindings (PYTHONPATH=build/python).
"""
import argparse
import pathlib

import numpy as np
from PIL import Image

import histocnn
from patient_patches import patient_patches


def glass(patches):
    """The glass of a group of patches, as a white-balance reference fit estimates it."""
    return np.array(histocnn.data.StainNormaliser.fit("white-balance", patches, fit="slide").target.background)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=pathlib.Path, help="a folder of patches: <patient>/<0|1>/*.png")
    parser.add_argument("--patients", type=int, default=12, help="the first N patients (default 12)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64],
                        help="patches per draw (default 1 2 4 8 16 32 64)")
    parser.add_argument("--draws", type=int, default=30, help="random draws for each size (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    files = patient_patches(args.data, args.patients)
    patients = list(files)
    rng = np.random.default_rng(args.seed)
    whole, errors = [], {k: [] for k in args.sizes}
    for patient in patients:
        slide = [np.asarray(Image.open(f).convert("RGB")) for f in files[patient]]
        whole.append(glass(slide))
        for k in args.sizes:
            if k > len(slide):
                continue
            draws = [glass([slide[i] for i in rng.choice(len(slide), k, replace=False)]) for _ in range(args.draws)]
            errors[k].append(np.median([np.abs(g - whole[-1]).max() for g in draws]))
    whole = np.array(whole)
    spread = (whole.max(axis=0) - whole.min(axis=0)).max()
    print(f"{len(patients)} patients of {args.data}; their whole slides' glass (optical density, R G B) ranges "
          f"{np.round(whole.min(axis=0), 3).tolist()} to {np.round(whole.max(axis=0), 3).tolist()} "
          f"(largest channel's range {spread:.3f})\n")
    print("| patches | patients | median error | largest patient's error |\n|---:|---:|---:|---:|")
    for k, e in errors.items():
        if e:
            print(f"| {k} | {len(e)} | {np.median(e):.3f} | {np.max(e):.3f} |")


if __name__ == "__main__":
    main()
