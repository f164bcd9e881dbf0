#!/usr/bin/env python3
"""Training speed with OpenBLAS's own thread pool on and off, in the same run.

LibTorch runs its CPU work on its own OpenMP threads and calls OpenBLAS for matrix products
(Debian's LibTorch uses the system BLAS: libopenblas0-pthread). OpenBLAS starts a thread pool of its
own, as many threads as cores; when LibTorch's threads call it from inside their parallel regions,
both pools want every core. `histocnn` sets OpenBLAS to one thread when the environment does not
name a count (OPENBLAS_NUM_THREADS or GOTO_NUM_THREADS); this runs the same `histocnn train` jobs
with OPENBLAS_NUM_THREADS=1 and with OPENBLAS_NUM_THREADS=<cores> (OpenBLAS's own default),
alternating, and prints each job's training speed (history.csv's images per second, the mean over
epochs), its fit time (metrics.json's fit_seconds: decoding, feature cache and epochs) and its last
training loss for both, with the ratios (above 1: one thread is faster).

    /usr/bin/python3 bench/blas_threads.py --cli build/histocnn --data <data>/idc_real <data>/idc_wide \\
        --weights-dir <weights>

Cases: the robust-cnn recipe (the small CNN trained from scratch, 50 px); the study's VGG16 frozen
with its dense head on cached features (random weights: the speed is the same); MobileNetV2 frozen
with the lstm head (96 px); MobileNetV2 with its last 4 layers unfrozen (96 px). The last two need
--weights-dir (ImageNet MobileNetV2) and are skipped without it. A first row times what one thread
costs: a lone large matrix product, where OpenBLAS's pool is the only parallelism (Debian's PyTorch,
the same LibTorch and OpenBLAS). Run it on an otherwise idle machine: both settings use every core.
"""
import argparse
import csv
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import tempfile

CASES = [
    # (name, needs ImageNet weights, arguments of `histocnn train` after --data)
    # Every patch in the epoch, as the recipe trained when docs/benchmarks.md's table was made.
    ("robust-cnn recipe, 1 epoch", False, ["--recipe", "robust-cnn", "--per-patient", "0", "--epochs", "1"]),
    ("study: vgg16 frozen + dense head, 5 epochs", False,
     ["--recipe", "study", "--weights", "", "--epochs", "5", "--balance", "2500"]),
    ("mobilenet_v2 frozen + lstm head, 96 px, 3 epochs", True,
     ["--backbone", "mobilenet_v2", "--weights", "imagenet", "--image-size", "96", "--head", "lstm",
      "--epochs", "3", "--balance", "1500"]),
    ("mobilenet_v2 last 4 layers unfrozen, 96 px, 1 epoch", True,
     ["--backbone", "mobilenet_v2", "--weights", "imagenet", "--image-size", "96", "--unfreeze-last", "4",
      "--epochs", "1", "--balance", "1500", "--augment", "flips"]),
]


def train(cli, data, args, blas_threads, weights_dir, work):
    """One `histocnn train` run: (mean images per second over its epochs, fit seconds (decoding,
    feature cache and epochs), last training loss)."""
    env = dict(os.environ, HISTOCNN_PROGRESS="0", OPENBLAS_NUM_THREADS=str(blas_threads))
    if weights_dir:
        env["HISTOCNN_WEIGHTS_DIR"] = str(weights_dir)
    out = pathlib.Path(tempfile.mkdtemp(dir=work))
    proc = subprocess.run([str(cli), "train", "--data", *map(str, data), "--output-dir", str(out),
                           "--no-tensorboard", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"histocnn train {' '.join(args)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    history = next(out.glob("*/history.csv"), None)
    if history is None:
        sys.exit(f"{out}: no */history.csv after histocnn train")
    rows = list(csv.DictReader(history.open()))
    speeds = [float(r["images_per_second"]) for r in rows]
    fit_seconds = json.loads((history.parent / "metrics.json").read_text())["fit_seconds"]
    return sum(speeds) / len(speeds), fit_seconds, float(rows[-1]["train_loss"])


MATMUL = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
torch.mm(a, b)
start = time.perf_counter()
for _ in range(10):
    torch.mm(a, b)
print(10 * 2 * 2048 ** 3 / (time.perf_counter() - start) / 1e9)
"""


def matmul_gflops(blas_threads, cores):
    """GFLOP/s of a lone 2048 x 2048 float product in this interpreter's PyTorch (the same Debian
    LibTorch and OpenBLAS), called from the main thread: there OpenBLAS's pool is the only parallelism."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas_threads))
    proc = subprocess.run([sys.executable, "-c", MATMUL, str(cores)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"the matrix product failed:\n{proc.stderr[-2000:]}")
    return float(proc.stdout.split()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli", type=pathlib.Path, default=pathlib.Path("build/histocnn"))
    parser.add_argument("--data", type=pathlib.Path, nargs="+", required=True,
                        help="folders of patches (the robust-cnn case trains on all of them, the others on the first)")
    parser.add_argument("--weights-dir", type=pathlib.Path, help="ImageNet weights (HISTOCNN_WEIGHTS_DIR)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each case and setting (default 2)")
    parser.add_argument("--cases", type=int, nargs="+", help="which cases, numbered from 1 (default all)")
    args = parser.parse_args()
    if not args.cli.exists():
        sys.exit(f"{args.cli}: no histocnn executable; build it (scripts/build.sh) or pass --cli")
    cores = os.cpu_count() or 1
    if cores == 1:
        sys.exit("one core: OpenBLAS's pool and one thread are the same; nothing to compare")
    print(f"{cores} cores; OPENBLAS_NUM_THREADS=1 against ={cores}, {args.repeats} runs each, alternating")
    print(f"{'case':<52} {'epoch img/s: 1 thread':>21} {cores:>3} {'ratio':>6} {'fit s: 1 thread':>16} {cores:>6} "
          f"{'ratio':>6}  loss: 1 / {cores}")
    if importlib.util.find_spec("torch") is None:
        print(f"{'a lone 2048 x 2048 product (PyTorch)':<52} skipped: this interpreter has no torch")
    else:
        one, many = (sum(matmul_gflops(t, cores) for _ in range(args.repeats)) / args.repeats for t in (1, cores))
        print(f"{'a lone 2048 x 2048 product (PyTorch), GFLOP/s':<52} {one:>21.1f} {many:>3.0f} {one / many:>6.2f}")
    with tempfile.TemporaryDirectory(prefix="histocnn-blas-") as work:
        for number, (name, needs_weights, case_args) in enumerate(CASES, start=1):
            if args.cases and number not in args.cases:
                continue
            if needs_weights and not args.weights_dir:
                print(f"{name:<52} skipped: needs --weights-dir (ImageNet MobileNetV2)")
                continue
            data = args.data if number == 1 else args.data[:1]
            runs = {1: [], cores: []}
            for _ in range(args.repeats):
                for threads in (cores, 1):
                    runs[threads].append(train(args.cli, data, case_args, threads, args.weights_dir, work))
            one, many = ([sum(r[i] for r in runs[t]) / len(runs[t]) for i in range(2)] for t in (1, cores))
            losses = f"{runs[1][-1][2]:.4f} / {runs[cores][-1][2]:.4f}"
            print(f"{name:<52} {one[0]:>21.1f} {many[0]:>3.0f} {one[0] / many[0]:>6.2f} {one[1]:>16.1f} {many[1]:>6.1f} "
                  f"{many[1] / one[1]:>6.2f}  {losses}", flush=True)


if __name__ == "__main__":
    main()
