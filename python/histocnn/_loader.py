"""Loads the compiled extension, checking that it matches the torch in this interpreter."""
import importlib

_histocnn = importlib.import_module("histocnn._histocnn")


def _check_torch():
    try:
        import torch
    except ImportError:  # the extension links LibTorch itself; the Python torch is optional
        return
    built = _histocnn.torch_version()
    found = torch.__version__.split("+")[0]
    if found.split(".")[:2] != built.split(".")[:2]:
        raise ImportError(
            f"histocnn was built against LibTorch {built} but this interpreter imports torch {found} "
            f"from {torch.__file__}; rebuild histocnn against it, or use the interpreter it was built for"
        )


_check_torch()
