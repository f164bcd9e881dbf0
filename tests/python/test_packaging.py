"""`pip install .` into a fresh virtual environment that sees Debian's python3-torch."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import env_without_pythonpath, install_wheel, make_venv

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not os.environ.get("HISTOCNN_BINARY_DIR"), reason="run through ctest (scripts/test.sh)")
def test_pip_install_into_a_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    # Reuse the tree's CMake build folder so the install compiles only what changed.
    env = {**os.environ, "HISTOCNN_PIP_BUILD_DIR": os.environ["HISTOCNN_BINARY_DIR"]}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(python), "-m", "pip", "install", "--no-build-isolation", "--no-deps", "-q", str(ROOT)],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = subprocess.run([str(python), "-c", "import histocnn, torch; print(histocnn.__file__); "
                          "print(histocnn.models.count_parameters('mobilenet_v2'))"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert out[0].startswith(str(venv))
    assert out[1] == "2223872"


def test_pip_wheel_installs_into_a_fresh_venv(histocnn_wheel, tmp_path):
    python = make_venv(tmp_path / "venv")
    install_wheel(python, histocnn_wheel)
    out = subprocess.run([str(python), "-m", "histocnn", "--version"], env=env_without_pythonpath(), cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("histocnn ")
