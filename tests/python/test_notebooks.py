"""Every notebook in examples/notebooks runs from top to bottom without an error: under the default
`python3` kernel with the build tree's package, and under the kernel of a virtual environment that
has the wheel installed, registered as docs/python.md says."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import env_without_pythonpath, install_wheel, make_venv

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "examples" / "notebooks").glob("*.ipynb"))


def run_notebook(path, kernel_name, cwd, monkeypatch):
    """The notebook executed with nbclient under kernel_name (raises CellExecutionError naming the
    failing cell), its kernel's temporary folders made under cwd: the executed notebook."""
    monkeypatch.setenv("TMPDIR", str(cwd))  # the notebooks' tempfile.mkdtemp() work folders go with it
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name=kernel_name, resources={"metadata": {"path": str(cwd)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    # The kernel starts in tmp_path: a relative PYTHONPATH (build/python) is made absolute for it.
    if os.environ.get("PYTHONPATH"):
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(os.path.abspath(p) for p in
                                                         os.environ["PYTHONPATH"].split(os.pathsep) if p))
    run_notebook(path, "python3", tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def venv_kernel(histocnn_wheel, tmp_path_factory):
    """A venv with the wheel installed and its kernel registered as `histocnn` in a Jupyter data
    folder of its own (the user's kernels are left alone): (venv, data folder)."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    root = tmp_path_factory.mktemp("venv-kernel")
    venv, data_dir = root / "venv", root / "jupyter"
    python = make_venv(venv)
    install_wheel(python, histocnn_wheel)
    # The command of docs/python.md; JUPYTER_DATA_DIR redirects --user to the temporary folder.
    proc = subprocess.run([str(python), "-m", "ipykernel", "install", "--user", "--name", "histocnn",
                           "--display-name", "Python (histocnn)"],
                          env=env_without_pythonpath(JUPYTER_DATA_DIR=str(data_dir)), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    spec = json.loads((data_dir / "kernels" / "histocnn" / "kernel.json").read_text())
    assert spec["argv"][0] == str(python)
    return venv, data_dir


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_under_a_venv_kernel(path, venv_kernel, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    venv, data_dir = venv_kernel
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data_dir))  # where nbclient looks the kernel up
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the kernel inherits this process's environment
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json, sys, histocnn\nprint(json.dumps([sys.prefix, histocnn.__file__]))"))
    executed = tmp_path / path.name
    nbformat.write(nb, executed)
    nb = run_notebook(executed, "histocnn", tmp_path, monkeypatch)
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    prefix, module = json.loads(text.strip().splitlines()[-1])
    assert Path(prefix) == venv  # the venv's interpreter ran the notebook ...
    assert Path(module).is_relative_to(venv), module  # ... with the venv's histocnn, not the build tree's
