#!/usr/bin/env python3
"""How far per-slide stain normalisation leaves a restained slide from the same slide as stained.

Each patient of a Kaggle-layout folder is restained as `histocnn evaluate --stain-shift` does (its
haematoxylin, eosin and residual concentrations, by Ruifrok & Johnston's matrix, scaled by
1 + N(0, sigma) and shifted by N(0, sigma), one draw per patient: `histocnn.data.restain`),
then normalised per slide with Macenko, with and without white balance to the glass, by white
balance alone, and not at all; printed is the mean absolute difference (8-bit levels) between each
patch as stained and restained, both normalised the same way, averaged over the patients:

    /usr/bin/python3 bench/restain_normalisation.py <data>/idc_real --patients 8

It also splits the restaining into its scale alone and its shift alone. Uses Debian's python3 with
numpy and Pillow and the histocnn bindings (PYTHONPATH=build/python).
"""
import argparse
import pathlib

import numpy as np
from PIL import Image

import histocnn
from patient_patches import patient_patches


def mean_difference(a, b):
    return float(np.mean([np.abs(x.astype(int) - y).mean() for x, y in zip(a, b)]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=pathlib.Path, help="a folder of patches: <patient>/<0|1>/*.png")
    parser.add_argument("--patients", type=int, default=8, help="the first N patients (default 8)")
    parser.add_argument("--every", type=int, default=4, help="every Nth patch of a patient (default 4)")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.1, 0.2])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    files = patient_patches(args.data, args.patients)
    patients = list(files)
    slides = [[np.asarray(Image.open(f).convert("RGB")) for f in files[p][::args.every]]
              for p in patients]
    reference = [patch for slide in slides for patch in slide][::10]
    ways = {"none": None}
    for wb in (False, True):
        ways["macenko per slide" + (", white-balanced" if wb else "")] = histocnn.data.StainNormaliser.fit(
            "macenko", reference, fit="slide", white_balance=wb)
    ways["white balance per slide"] = histocnn.data.StainNormaliser.fit("white-balance", reference, fit="slide")
    rng = np.random.default_rng(args.seed)
    print(f"{len(patients)} patients of {args.data}, {sum(map(len, slides))} patches; mean |restained - as stained| "
          "after normalising both, in 8-bit levels\n")
    print("| sigma | restaining | " + " | ".join(ways) + " |\n|---:|---|" + "---:|" * len(ways))
    for sigma in args.sigmas:
        draws = [(rng.normal(0, sigma, 3), rng.normal(0, sigma, 3)) for _ in slides]
        for part, keep in (("scale and shift", (1, 1)), ("scale alone", (1, 0)), ("shift alone", (0, 1))):
            cells = []
            for norm in ways.values():
                d = []
                for slide, (scale, shift) in zip(slides, draws):
                    restained = [histocnn.data.restain(p, 1 + keep[0] * scale, keep[1] * shift) for p in slide]
                    if norm is None:
                        d.append(mean_difference(slide, restained))
                    else:
                        d.append(mean_difference(norm.normalise_group(slide), norm.normalise_group(restained)))
                cells.append(f"{np.mean(d):.1f}")
            print(f"| {sigma} | {part} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
