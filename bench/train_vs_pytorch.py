#!/usr/bin/env python3
"""Training throughput: histocnn against an equivalent PyTorch script, in the same run.

The same model (MobileNetV2 + the study's dense head), the same real patches (a patient-level
train/validation selection of ../shared/data/idc_real), the same optimiser, batch size, epochs,
augmentation and thread count, trained by

  * the `histocnn train` executable (its `fit_seconds`: decoding, feature cache and epochs), and
  * a plain PyTorch script written the way a PyTorch user would: torchvision's mobilenet_v2, a
    Dataset decoding PNGs with PIL, a DataLoader with worker processes, one validation pass per epoch.

Cases: the backbone frozen (histocnn with and without its feature cache; PyTorch recomputes the
frozen backbone every epoch, as a plain script does) and the last blocks unfrozen with flips and
quarter-turn augmentation, each at 96 and 224 px. Prints images per second (training images times
epochs over the wall time of training) for both and the ratio histocnn / PyTorch (above 1: histocnn
is faster).

    /usr/bin/python3 bench/train_vs_pytorch.py --cli build/histocnn
    /usr/bin/python3 bench/train_vs_pytorch.py --cli build/histocnn --sizes 96 --train 512 --val 128 --epochs 2

Run it on an otherwise idle machine: both sides use every core.
"""
import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np
import torch
import torchvision
from PIL import Image

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def select_patches(data_dir, n_train, n_val, seed):
    """Balanced patches from disjoint patients: the first patients (shuffled) give the training
    patches, the others the validation patches."""
    rows = list(csv.DictReader(open(os.path.join(data_dir, "manifest.csv"))))
    patients = sorted({r["patient_id"] for r in rows})
    rng = random.Random(seed)
    rng.shuffle(patients)
    val_patients = set(patients[: max(2, len(patients) // 5)])
    pools = defaultdict(list)
    for r in rows:
        pools[("val" if r["patient_id"] in val_patients else "train", int(r["label"]))].append(r)
    chosen = []
    for split, n in (("train", n_train), ("val", n_val)):
        for label in (0, 1):
            pool = pools[(split, label)]
            rng.shuffle(pool)
            if len(pool) < n // 2:
                sys.exit(f"only {len(pool)} {split} patches of class {label}; ask for fewer")
            chosen += [dict(r, split=split) for r in pool[: n // 2]]
    return chosen


def write_manifest(rows, path):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "patient", "label", "x", "y", "split"])
        for r in rows:
            w.writerow([r["path"], r["patient_id"], r["label"], r["x"], r["y"], r["split"]])


# ---------------------------------------------------------------------------------------------
# The PyTorch script
# ---------------------------------------------------------------------------------------------

class Patches(torch.utils.data.Dataset):
    """PNG patches, padded white to 50x50 (border patches are smaller), resized bilinearly,
    normalised with ImageNet statistics; flips and quarter turns when augmenting."""

    def __init__(self, data_dir, rows, size, augment):
        self.paths = [os.path.join(data_dir, r["path"]) for r in rows]
        self.labels = [int(r["label"]) for r in rows]
        self.size, self.augment = size, augment
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        img = Image.open(self.paths[i]).convert("RGB")
        if img.width < 50 or img.height < 50:
            padded = Image.new("RGB", (max(50, img.width), max(50, img.height)), (255, 255, 255))
            padded.paste(img, (0, 0))
            img = padded
        img = img.resize((self.size, self.size), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        if self.augment:
            if random.random() < 0.5:
                x = x.flip(2)
            if random.random() < 0.5:
                x = x.flip(1)
            x = torch.rot90(x, random.randrange(4), (1, 2))
        return (x - self.mean) / self.std, self.labels[i]


class Model(torch.nn.Module):
    """torchvision MobileNetV2 features + global average pooling + the study's dense head."""

    def __init__(self):
        super().__init__()
        self.backbone = torchvision.models.mobilenet_v2().features
        self.head = torch.nn.Sequential(
            torch.nn.Linear(1280, 512), torch.nn.ReLU(), torch.nn.Dropout(0.2),
            torch.nn.Linear(512, 128), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(128, 2))

    def forward(self, x):
        return self.head(torch.nn.functional.adaptive_avg_pool2d(self.backbone(x), 1).flatten(1))


def pytorch_train(data_dir, rows, size, epochs, batch_size, unfreeze_last, augment, workers, seed, channels_last):
    torch.manual_seed(seed)
    random.seed(seed)
    model = Model()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    for block in list(model.backbone.children())[len(model.backbone) - unfreeze_last:] if unfreeze_last else []:
        for p in block.parameters():
            p.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.RMSprop(params, lr=1e-3, alpha=0.9, eps=1e-7)
    train_rows = [r for r in rows if r["split"] == "train"]
    val_rows = [r for r in rows if r["split"] == "val"]
    train_loader = torch.utils.data.DataLoader(Patches(data_dir, train_rows, size, augment), batch_size=batch_size,
                                               shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    val_loader = torch.utils.data.DataLoader(Patches(data_dir, val_rows, size, False), batch_size=64,
                                             num_workers=workers, persistent_workers=workers > 0)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        model.backbone.eval()  # frozen BatchNorm stays in inference mode, as in histocnn
        for x, y in train_loader:
            loss = torch.nn.functional.cross_entropy(model(x.contiguous(memory_format=fmt)), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for x, y in val_loader:
                torch.softmax(model(x.contiguous(memory_format=fmt)), 1)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# histocnn
# ---------------------------------------------------------------------------------------------

def histocnn_train(cli, data_dir, manifest, out, size, epochs, batch_size, unfreeze_last, augment, cache, seed,
                   threads):
    args = [cli, "train", "--data", data_dir, "--manifest", manifest, "--out", out, "--name", "run",
            "--backbone", "mobilenet_v2", "--image-size", str(size), "--epochs", str(epochs),
            "--batch-size", str(batch_size), "--optimizer", "rmsprop", "--lr", "1e-3", "--seed", str(seed),
            "--threads", str(threads), "--no-tensorboard", "--augment", "flips" if augment else "none"]
    if unfreeze_last:
        args += ["--unfreeze-last", str(unfreeze_last)]
    if not cache:
        args.append("--no-feature-cache")
    env = {**os.environ, "HISTOCNN_PROGRESS": "0", "HISTOCNN_LOG_LEVEL": "error"}
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.load(open(os.path.join(out, "run", "metrics.json")))["fit_seconds"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", required=True, help="the histocnn executable")
    ap.add_argument("--data", default=os.environ.get("HISTOCNN_DATA_DIR", "../shared/data/idc_real"))
    ap.add_argument("--sizes", default="96,224")
    ap.add_argument("--train", type=int, default=1024, help="training patches (half per class)")
    ap.add_argument("--val", type=int, default=256, help="validation patches (half per class)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--unfreeze-last", type=int, default=4, help="blocks trained in the unfrozen case")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers (histocnn uses its default)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--pytorch-channels-last", action="store_true",
                    help="give the PyTorch script channels-last inputs too (what histocnn does on the CPU)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="compute threads, both sides")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)  # Debian's torch may start with one OpenMP thread

    print(f"python {sys.executable}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"threads {torch.get_num_threads()}", flush=True)
    rows = select_patches(args.data, args.train, args.val, args.seed)
    with tempfile.TemporaryDirectory(prefix="histocnn-train-bench-") as work:
        manifest = os.path.join(work, "manifest.csv")
        write_manifest(rows, manifest)
        for r in rows:  # both sides read from the page cache
            with open(os.path.join(args.data, r["path"]), "rb") as f:
                f.read()
        images = args.train * args.epochs
        cases = [("frozen, feature cache", 0, False, True), ("frozen, no cache", 0, False, False),
                 (f"last {args.unfreeze_last} blocks, flips", args.unfreeze_last, True, True)]
        print(f"{args.train} training and {args.val} validation patches from disjoint patients, {args.epochs} epochs, "
              f"batch {args.batch_size}, {args.threads} threads, PyTorch inputs "
              f"{'channels-last' if args.pytorch_channels_last else 'in the default memory format'}; "
              "images/s = training images x epochs / training wall time")
        print("| case | size | histocnn img/s | PyTorch img/s | ratio |")
        print("|---|---|---|---|---|")
        pytorch_cache = {}
        for size in [int(s) for s in args.sizes.split(",")]:
            for label, unfreeze, augment, cache in cases:
                out = os.path.join(work, f"{size}-{unfreeze}-{int(cache)}")
                h = histocnn_train(args.cli, args.data, manifest, out, size, args.epochs, args.batch_size, unfreeze,
                                   augment, cache, args.seed, args.threads)
                key = (size, unfreeze, augment)  # PyTorch has no cache: the frozen cases share one measurement
                if key not in pytorch_cache:
                    pytorch_cache[key] = pytorch_train(args.data, rows, size, args.epochs, args.batch_size, unfreeze,
                                                       augment, args.workers, args.seed,
                                                       args.pytorch_channels_last)
                p = pytorch_cache[key]
                print(f"| {label} | {size} | {images / h:.1f} | {images / p:.1f} | {p / h:.2f} |", flush=True)


if __name__ == "__main__":
    main()
