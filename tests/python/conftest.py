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
