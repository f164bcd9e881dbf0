#!/usr/bin/env python3
"""Forward-pass throughput of histocnn's backbones (C++) and, where torchvision has the same model,
of torchvision's (Python), measured in the same run on the same input, with the ratio.

    /usr/bin/python3 bench/backbone_throughput.py --cli build/histocnn --sizes 50 224 --batch 32 --threads 2

Both sides run the feature extractor only (no top), in eval mode without gradients, on one random
batch [batch, 3, size, size], after one warm-up pass; `--repeat` timed passes follow and the best one
is reported (on a machine shared with other work the mean mostly measures the other work). histocnn
is timed inside its own process (`histocnn models features --time N`), so process start-up and
weight initialisation are not counted on either side. Prints a Markdown table.
"""
import argparse
import os
import importlib.util
import pathlib
import re
import subprocess
import tempfile
import time

_HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("histocnn_convert", _HERE.parent / "python" / "histocnn" / "convert.py")
convert = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(convert)

TORCHVISION = {"resnet18", "resnet50", "vgg16", "densenet121", "densenet201", "squeezenet1_1", "mobilenet_v2",
               "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"}


def torchvision_features(torch, torchvision, name):
    model = getattr(torchvision.models, name)()
    if name.startswith("resnet"):
        return torch.nn.Sequential(*list(model.children())[:-2])
    if name.startswith("densenet"):
        return torch.nn.Sequential(model.features, torch.nn.ReLU())
    return model.features


def time_torchvision(name, x, repeat, channels_last=False):
    import torch
    import torchvision

    net = torchvision_features(torch, torchvision, name).eval()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    best = float("inf")
    with torch.no_grad():
        net(x)
        for _ in range(repeat):
            start = time.perf_counter()
            net(x)
            best = min(best, time.perf_counter() - start)
    return x.shape[0] / best


def time_histocnn(cli, name, input_file, repeat, threads):
    out = subprocess.run([cli, "models", "features", "--backbone", name, "--input", str(input_file),
                          "--threads", str(threads), "--time", str(repeat)],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"([0-9.]+) images/s best", out).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cli", required=True, help="the histocnn executable")
    parser.add_argument("--backbones", nargs="*", help="default: every registered backbone")
    parser.add_argument("--sizes", nargs="+", type=int, default=[50, 224])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--torchvision-channels-last", action="store_true",
                        help="give torchvision channels-last inputs too, as histocnn does on the CPU")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes after one warm-up pass (best reported)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    names = args.backbones
    if not names:
        listing = subprocess.run([args.cli, "models", "list"], capture_output=True, text=True, check=True).stdout
        names = [line.split()[0] for line in listing.splitlines()[1:] if line.strip()]
    print(f"batch {args.batch}, {args.threads} threads, torch {torch.__version__}, images/s (forward, features only, "
          f"best of {args.repeat} passes); torchvision inputs "
          f"{'channels-last' if args.torchvision_channels_last else 'in the default memory format'}; load average before: {os.getloadavg()[0]:.1f}\n")
    header = "| backbone | " + " | ".join(f"histocnn {s} px | torchvision {s} px | ratio {s}" for s in args.sizes) + " |"
    print(header)
    print("|" + "---|" * (1 + 3 * len(args.sizes)))
    with tempfile.TemporaryDirectory() as tmp:
        inputs = {}
        for s in args.sizes:
            x = torch.randn(args.batch, 3, s, s, generator=torch.Generator().manual_seed(s))
            path = pathlib.Path(tmp) / f"x{s}.safetensors"
            convert.save_safetensors(path, {"input": x})
            inputs[s] = (x, path)
        for name in names:
            cells = []
            for s in args.sizes:
                x, path = inputs[s]
                ours = time_histocnn(args.cli, name, path, args.repeat, args.threads)
                if name in TORCHVISION:
                    theirs = time_torchvision(name, x, args.repeat, args.torchvision_channels_last)
                    cells += [f"{ours:.1f}", f"{theirs:.1f}", f"{ours / theirs:.2f}"]
                else:
                    cells += [f"{ours:.1f}", "-", "-"]
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
