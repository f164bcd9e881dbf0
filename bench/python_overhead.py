#!/usr/bin/env python3
"""`histocnn.Trainer(...).fit()` from Python against the same run from the `histocnn` executable,
in the same run on the same synthetic data; prints both wall times and their ratio.

    PYTHONPATH=build/python /usr/bin/python3 bench/python_overhead.py --cli build/histocnn
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", required=True, help="the histocnn executable")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    import histocnn
    with tempfile.TemporaryDirectory(prefix="histocnn-overhead-") as work:
        data = os.path.join(work, "data")
        histocnn.data.generate_synthetic(data, patients=10, patches_per_patient=80, seed=2)
        options = dict(backbone="simple_cnn", freeze_backbone=False, image_size=50, epochs=args.epochs, seed=1,
                       augment="flips", tensorboard=False)
        cli_args = ["--backbone", "simple_cnn", "--unfreeze", "--image-size", "50", "--epochs", str(args.epochs),
                    "--seed", "1", "--augment", "flips", "--no-tensorboard"]
        env = {**os.environ, "HISTOCNN_PROGRESS": "0", "HISTOCNN_LOG_LEVEL": "warn"}
        py_times, cli_times = [], []
        for r in range(args.repeat):
            t0 = time.perf_counter()
            subprocess.run([args.cli, "train", "--data", data, "--out", os.path.join(work, f"cli{r}"), *cli_args],
                           check=True, env=env, stdout=subprocess.DEVNULL)
            cli_times.append(time.perf_counter() - t0)
            os.environ.update(env)
            t0 = time.perf_counter()
            histocnn.Trainer(data_dir=data, output_dir=os.path.join(work, f"py{r}"), progress=False, **options).fit()
            py_times.append(time.perf_counter() - t0)
    cli, py = min(cli_times), min(py_times)
    print(f"simple_cnn, 50 px, {args.epochs} epochs, 800 synthetic patches, best of {args.repeat}")
    print(f"histocnn executable: {cli:.2f} s   Python Trainer.fit: {py:.2f} s   ratio (Python / executable): {py / cli:.3f}")
    print("(the executable's time includes process start and loading LibTorch; the Python time does not include import)")


if __name__ == "__main__":
    sys.exit(main())
