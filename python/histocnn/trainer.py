"""The notebook-facing Trainer: keyword options in, a run folder and a history out."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ._loader import _histocnn

_train = _histocnn.train

# Keyword arguments and where they live in the C++ options (same names and defaults as C++).
_MODEL_KEYS = ("backbone", "tf_padding", "freeze_backbone", "train_bn", "hidden1", "hidden2", "dropout",
               "batch_norm", "num_classes")
_TRAINER_KEYS = ("epochs", "batch_size", "optimizer", "learning_rate", "weight_decay", "seed", "workers",
                 "threads", "device", "augment", "cache_features", "restore_best", "progress")
_RUN_KEYS = ("output_dir", "name", "weights", "image_size", "normalisation", "balance_per_class", "threshold")
_SPLIT_KEYS = {"train_fraction": "train", "val_fraction": "val", "test_fraction": "test",
               "split_by_patch": "by_patch"}


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
    """Trains a backbone + dense head on a folder of patches, exactly as ``histocnn train`` does.

    Keyword arguments have the names and defaults of the C++ options (``ClassifierOptions``,
    ``TrainerOptions``, ``RunOptions``); the split fractions are ``train_fraction``,
    ``val_fraction``, ``test_fraction`` and ``split_by_patch``.
    """

    def __init__(self, data_dir: Optional[str] = None, manifest: Optional[str] = None, **options: Any):
        self.options = _train.RunOptions()
        if data_dir is not None:
            self.options.data_dir = os.fspath(data_dir)
        if manifest is not None:
            self.options.manifest = os.fspath(manifest)
        self.options.trainer.progress = True
        model = self.options.model
        trainer = self.options.trainer
        split = self.options.split
        for key, value in options.items():
            if key in _MODEL_KEYS:
                setattr(model, key, value)
            elif key in _TRAINER_KEYS:
                setattr(trainer, key, value)
            elif key in _RUN_KEYS:
                setattr(self.options, key, "" if value is None and key == "weights" else value)
            elif key in _SPLIT_KEYS:
                setattr(split, _SPLIT_KEYS[key], value)
            else:
                known = sorted((*_MODEL_KEYS, *_TRAINER_KEYS, *_RUN_KEYS, *_SPLIT_KEYS))
                raise TypeError(f"Trainer got an unknown option {key!r}; known options: {', '.join(known)}")
        split.seed = trainer.seed
        self.options.model = model
        self.options.trainer = trainer
        self.options.split = split
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
