"""The notebook-facing Trainer: keyword options in, a run folder and a history out."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ._loader import _histocnn

_train = _histocnn.train


@dataclass
class History:
    """Per-epoch training records, as dicts; ``to_pandas()`` gives a DataFrame."""

    epochs: List[Dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_auc: float = float("nan")

    @classmethod
    def _from_cpp(cls, h) -> "History":
        keys = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_auc", "learning_rate",
                "seconds", "images_per_second")
        return cls([{k: getattr(e, k) for k in keys} for e in h.epochs], h.best_epoch, h.best_val_auc)

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, i):
        return self.epochs[i]

    def to_pandas(self):
        import pandas as pd
        return pd.DataFrame(self.epochs)


class Trainer:
    """Trains a backbone + head on a folder of patches, exactly as ``histocnn train`` does.

    Keyword arguments are histocnn's option names (``histocnn.train.run_option_names()``), the
    same as in a ``histocnn compare`` config, with the C++ defaults: for example ``backbone``,
    ``weights``, ``image_size``, ``epochs``, ``optimizer``, ``learning_rate``, ``augment``,
    ``freeze_backbone``, ``unfreeze_last``, ``head``, ``train_fraction``.
    """

    def __init__(self, data_dir: Optional[str] = None, manifest: Optional[str] = None, **options: Any):
        self.options = _train.RunOptions()
        known = set(_train.run_option_names())
        if data_dir is not None:
            options["data_dir"] = os.fspath(data_dir)
        if manifest is not None:
            options["manifest"] = os.fspath(manifest)
        for key, value in options.items():
            if key not in known:
                raise TypeError(f"Trainer got an unknown option {key!r}; known options: {', '.join(sorted(known))}")
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
            _train.set_run_option(self.options, key, json.dumps(value))
        self.result = None

    def fit(self) -> History:
        """Splits by patient, trains, evaluates on validation and test, writes the run folder."""
        self.result = _train.run_training(self.options)
        return History._from_cpp(self.result.history)

    @property
    def run_dir(self) -> Optional[str]:
        return None if self.result is None else str(self.result.run_dir)


def evaluate(model_dir: str, data_dir: str = "", manifest: str = "", split: str = "test",
             threshold: float = -1.0, device: str = "auto"):
    """Evaluates a saved model; returns an object with .metrics, .report and .predictions."""
    m = _train.load_patch_manifest(os.fspath(data_dir), os.fspath(manifest))
    if split != "all" and any(r.split for r in m.rows):
        m = m.subset(split)
    return _train.evaluate_bundle(os.fspath(model_dir), m, threshold=threshold, device=device)


def demo(output_dir: str = "histocnn-demo", **options: Any):
    """Synthetic data -> training -> evaluation, as ``histocnn demo``; returns the run result."""
    o = _train.DemoOptions()
    o.output_dir = os.fspath(output_dir)
    for key, value in options.items():
        setattr(o, key, value)
    return _train.run_demo(o)
