import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def cli():
    """Path of the histocnn executable built beside the bindings (set by ctest)."""
    path = os.environ.get("HISTOCNN_CLI")
    if not path or not os.path.exists(path):
        pytest.skip("HISTOCNN_CLI is not set: run the tests through ctest (scripts/test.sh)")
    return path


ROOT = pathlib.Path(__file__).resolve().parents[2]


def env_without_pythonpath(**extra):
    """The test environment without PYTHONPATH, so that a venv's own histocnn is the one imported
    rather than the build tree's."""
    env = {**os.environ, **extra}
    env.pop("PYTHONPATH", None)
    return env


def make_venv(path):
    """A fresh virtual environment that sees Debian's packages (python3-torch, numpy): its python."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(path)], check=True, timeout=300)
    return pathlib.Path(path) / "bin" / "python"


def install_wheel(python, wheel):
    """`pip install` of a local wheel into a venv, without the network."""
    proc = subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--no-deps", "-q", str(wheel)],
                          env=env_without_pythonpath(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def histocnn_wheel(tmp_path_factory):
    """The project's wheel, built once per session with `pip wheel` (no build isolation, no network),
    reusing the tree's CMake build folder so that only what changed is compiled."""
    binary_dir = os.environ.get("HISTOCNN_BINARY_DIR")
    if not binary_dir:
        pytest.skip("HISTOCNN_BINARY_DIR is not set: the wheel is built in the tree's build folder; "
                    "run through ctest (scripts/test.sh)")
    wheels = tmp_path_factory.mktemp("wheels")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-index", "--no-deps",
                           "-q", "-w", str(wheels), str(ROOT)],
                          env=env_without_pythonpath(HISTOCNN_PIP_BUILD_DIR=binary_dir),
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [wheel] = list(wheels.glob("histocnn-*.whl"))
    return wheel


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    import histocnn
    root = tmp_path_factory.mktemp("synthetic") / "data"
    histocnn.data.generate_synthetic(str(root), patients=8, patches_per_patient=30, seed=3)
    return root


def run_cli(cli, *args, check=True):
    proc = subprocess.run([cli, *map(str, args)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HISTOCNN_PROGRESS": "0"})
    if check and proc.returncode != 0:
        raise AssertionError(f"histocnn {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def load_convert():
    """histocnn's own numpy safetensors reader/writer, loaded by path so that tests using it do not
    need the compiled bindings."""
    path = pathlib.Path(__file__).resolve().parents[2] / "python" / "histocnn" / "convert.py"
    spec = importlib.util.spec_from_file_location("histocnn_convert", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomise_batchnorm(model, seed):
    """Random BatchNorm statistics and affine parameters: a fresh model's identity BatchNorm would
    hide one that is skipped or mis-wired."""
    import torch
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(c, generator=generator))
                m.weight.copy_(0.5 + torch.rand(c, generator=generator))
                m.bias.copy_(0.1 * torch.randn(c, generator=generator))


class ServeProcess:
    """`histocnn serve` running in a subprocess over a base path; stopped by stop()."""

    def __init__(self, cli, base_path, *args, model_name="idc"):
        self.base_path = pathlib.Path(base_path)
        self.model_name = model_name
        self.proc = subprocess.Popen([cli, "serve", "--model-base-path", str(base_path), "--model-name", model_name,
                                      "--port", "0", "--file-system-poll-wait-seconds", "0.2", "--no-access-log",
                                      *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "HISTOCNN_PROGRESS": "0"})
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise AssertionError(f"histocnn serve did not start: {line}{self.proc.stderr.read()}")
        self.url = line.strip().rsplit(" ", 1)[-1]

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=timeout)
        return self.proc.returncode


def train_bundle(cli, data, out, seed):
    """A small real model (simple_cnn from scratch, one epoch): its run folder."""
    name = f"serve-seed{seed}"
    run_cli(cli, "train", "--data", data, "--out", out, "--name", name, "--backbone", "simple_cnn", "--unfreeze",
            "--image-size", "50", "--epochs", "1", "--seed", seed, "--stain-shift", "0", "--no-tensorboard")
    return pathlib.Path(out) / name


@pytest.fixture(scope="session")
def serving_runs(cli, synthetic_data, tmp_path_factory):
    """Two trained runs whose models differ."""
    out = tmp_path_factory.mktemp("serve-runs")
    return [train_bundle(cli, synthetic_data, out, seed) for seed in (1, 2)]


@pytest.fixture(scope="session")
def serving_patch(synthetic_data):
    """A real patch when the real data is here (with its label), else a synthetic one."""
    real = os.environ.get("HISTOCNN_DATA_DIR")
    if real and os.path.isdir(real):
        for label in ("1", "0"):
            found = sorted(pathlib.Path(real).glob(f"*/{label}/*.png"))
            if found:
                return found[0], int(label)
    found = sorted(pathlib.Path(synthetic_data).glob("*/1/*.png"))
    return found[0], 1


@pytest.fixture(scope="module")
def serving(cli, serving_runs, serving_patch, tmp_path_factory):
    """`histocnn serve` over a base path with two versions of real trained models: .url,
    .model_name, .versions (ascending), .patch (a PNG) and .label (its class)."""
    base = tmp_path_factory.mktemp("serving") / "idc"
    for run in serving_runs:
        run_cli(cli, "push", run, base)
    (base / "serving_policy.json").write_text('{"model_version_policy": {"all": {}}}')  # both versions
    server = ServeProcess(cli, base)
    server.versions = ["1", "2"]
    server.patch, server.label = serving_patch
    yield server
    assert server.stop() == 0, server.proc.stderr.read()
