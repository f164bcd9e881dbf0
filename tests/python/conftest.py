import os
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
