"""The notebook-facing Trainer: keyword options in, a run folder and a history out."""
from __future__ import annotations

import inspect
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ._loader import _histocnn

_train = _histocnn.train


@dataclass
class History:
    """Per-epoch training records, as dicts; ``to_pandas()`` gives a DataFrame."""

    epochs: List[Dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_auc: float = float("nan")
    interrupted: bool = False

    @classmethod
    def _from_cpp(cls, h) -> "History":
        keys = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_auc", "learning_rate",
                "seconds", "images_per_second")
        return cls([{k: getattr(e, k) for k in keys} for e in h.epochs], h.best_epoch, h.best_val_auc,
                   h.interrupted)

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, i):
        return self.epochs[i]

    def to_pandas(self):
        import pandas as pd
        return pd.DataFrame(self.epochs)


def option_defaults() -> Dict[str, Any]:
    """The C++ defaults of every option, by name (``histocnn.train.run_option_names()``)."""
    return json.loads(_train.run_option_values(_train.RunOptions()))


class Trainer:
    """Trains a backbone + head on a folder of patches, exactly as ``histocnn train`` does.

    Keyword arguments are histocnn's option names (``histocnn.train.run_option_names()``), the
    same as in a ``histocnn compare`` config, with the C++ defaults: for example ``backbone``,
    ``weights``, ``image_size``, ``epochs``, ``optimizer``, ``learning_rate``, ``augment``,
    ``freeze_backbone``, ``unfreeze_last``, ``head``, ``train_fraction``.
    """

    def __init__(self, data_dir: Optional[str] = None, manifest: Optional[str] = None,
                 callbacks: Sequence = (), progress: Any = "auto", recipe: Optional[str] = None, **options: Any):
        """``callbacks``: histocnn.Callback instances. ``progress``: "auto" (a tqdm bar when tqdm
        is installed, else the C++ bar), "tqdm", True (the C++ bar on stderr) or False.
        ``recipe``: a named recipe applied first (``histocnn.train.run_preset_names()``: "robust-cnn"
        is the one cross-validation chose, "study" the published one), which the other keywords
        override."""
        self.options = _run_options("Trainer", data_dir, manifest, recipe, options)
        self.callbacks = list(callbacks)
        use_tqdm = progress == "tqdm"
        if progress == "auto":
            try:
                import tqdm  # noqa: F401
                use_tqdm = True
            except ImportError:
                use_tqdm = False
        if use_tqdm:
            from .callbacks import TqdmProgress
            self.callbacks.append(TqdmProgress())
        self.options.trainer.progress = bool(progress) and not use_tqdm
        self._stop = _train.StopSignal()
        self.result = None

    def option_values(self) -> Dict[str, Any]:
        """The options this Trainer will run with, by name (the C++ RunOptions read back)."""
        values = json.loads(_train.run_option_values(self.options))
        values.pop("progress")
        return values

    def fit(self) -> History:
        """Splits by patient, trains, evaluates on validation and test, writes the run folder.

        Ctrl-C (KeyboardInterrupt) stops training at the next batch; the checkpoint of the last
        complete epoch is kept (calling fit() again resumes from it) and the interrupt is re-raised
        once the C++ side has stopped cleanly.
        """
        self._stop = _train.StopSignal()
        self.options.callbacks = [*self.callbacks, self._stop]
        outcome: Dict[str, Any] = {}
        finished = threading.Event()

        def work():
            try:
                outcome["result"] = _train.run_training(self.options)
            except BaseException as e:  # handed to the calling thread
                outcome["error"] = e
            finally:
                finished.set()

        # Training runs in a worker thread (the C++ core releases the GIL) so that the main thread
        # stays free to receive KeyboardInterrupt and ask the trainer to stop. The wait uses an
        # Event: an interrupted Thread.join() can mark a running thread as finished.
        thread = threading.Thread(target=work, name="histocnn-fit", daemon=True)
        thread.start()
        interrupted = False
        while not finished.is_set():
            try:
                finished.wait(0.1)
            except KeyboardInterrupt:
                if not interrupted:
                    interrupted = True
                    self._stop.request()
                    print("histocnn: stopping at the next batch; the last checkpoint is kept", file=sys.stderr)
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        self.result = outcome["result"]
        history = History._from_cpp(self.result.history)
        if interrupted:
            raise KeyboardInterrupt("training stopped; call fit() again to resume from the last checkpoint")
        return history

    @property
    def run_dir(self) -> Optional[str]:
        return None if self.result is None else str(self.result.run_dir)


def _folders(data_dir) -> List[str]:
    """A folder, or a list of folders to join, as a list of paths."""
    return [os.fspath(d) for d in data_dir] if isinstance(data_dir, (list, tuple)) else [os.fspath(data_dir)]


def _run_options(caller: str, data_dir, manifest, recipe, options: Dict[str, Any]):
    """RunOptions from keywords, through the one options table (names, types, allowed values)."""
    run = _train.RunOptions()
    if recipe is not None:
        _train.apply_run_preset(run, recipe)
    known = set(_train.run_option_names())
    if data_dir is not None:  # a folder, or a list of folders to join
        options["data_dir"] = _folders(data_dir)
    if manifest is not None:
        options["manifest"] = os.fspath(manifest)
    for key, value in options.items():
        if key not in known or key == "progress":
            raise TypeError(f"{caller} got an unknown option {key!r}; known options: {', '.join(sorted(known))}")
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        _train.set_run_option(run, key, json.dumps(value))
    return run


def cross_validate(data_dir=None, manifest: Optional[str] = None, folds: int = 5, fold_seed: int = 42,
                   only_folds: Sequence[int] = (), restain: Sequence[float] = (0.1, 0.2), tta: bool = False,
                   context: int = _histocnn.inference.DEFAULT_SMOOTH_RADIUS, name: str = "cv",
                   recipe: Optional[str] = None, progress: bool = False, rescore: bool = False, **options: Any):
    """Leave-patients-out cross-validation, as ``histocnn cv``: each fold trains on the other
    patients (any Trainer keyword sets the recipe) and scores its own patients as stained and
    restained at each sigma of ``restain``, and, each of these again, with spatial context: each
    patch's P averaged over the fold's test patches within ``context`` places on the slide
    (``histocnn.inference.DEFAULT_SMOOTH_RADIUS``, 3, unless given; 0: not). ``data_dir`` may be a
    list of folders; each folder's patients are then also scored on their own. Folds finished
    before (the same ``name`` under ``output_dir``) are read back, or with ``rescore`` scored again
    from their saved models with these ``restain``, ``tta`` and ``context``. Returns
    ``(result, table)``: the C++ result (``.summary`` is the text table, ``.folds`` the per-fold
    scores) and a pandas DataFrame with one row per fold, sigma, context radius (0: the patch alone)
    and group."""
    cv = _train.CrossValidationOptions()
    cv.run = _run_options("cross_validate", data_dir, manifest, recipe, dict(options))
    cv.run.trainer.progress = bool(progress)
    cv.folds, cv.fold_seed, cv.only_folds = folds, fold_seed, list(only_folds)
    cv.stain_shifts, cv.tta, cv.context_radius, cv.name = list(restain), tta, context, name
    cv.rescore = bool(rescore)
    result = _train.cross_validate(cv)
    import pandas as pd
    rows = [{"fold": f.fold, "stain_shift": s.stain_shift, "context_radius": radius, "group": s.group,
             "patients": s.patients, "patches": s.patches, "roc_auc": s.roc_auc,
             "balanced_accuracy": s.balanced_accuracy, "sensitivity": s.sensitivity, "specificity": s.specificity,
             "median_patient_auc": s.median_patient_auc, "threshold": f.threshold, "seconds": f.seconds}
            for f in result.folds
            for radius, scores in ((0, f.scores), (f.context_radius, f.context_scores)) for s in scores]
    return result, pd.DataFrame(rows)


def evaluate(model_dir: str, data_dir: str = "", manifest: str = "", split: str = "test",
             threshold: Optional[float] = None, device: str = "auto", stain_shift: float = 0.0, seed: int = 42,
             tta: bool = False, stain_fit: str = ""):
    """Evaluates a saved model; returns an object with .metrics, .report, .predictions, .threshold
    and .to_json().

    ``split`` "train", "val" or "test" needs a manifest that records the split (a run's
    manifest.csv); "all" scores every patch. ``threshold`` defaults to the one saved with the
    model. ``stain_shift`` > 0 restains each patient one way first (H&E jitter of that sigma; 0.1
    is strong), as patients from another lab would look; ``seed`` picks the restaining (a run's own
    robustness evaluation used its training seed). ``tta`` averages each patch over its 8 flips and
    quarter turns. ``stain_fit`` ("patch" or "slide") overrides how a model that normalises stains
    fits the source statistics: per patch, or over each patient's patches."""
    m = _train.load_patch_manifest([d for d in _folders(data_dir) if d], os.fspath(manifest)).select_split(split)
    return _histocnn.inference.evaluate_bundle(os.fspath(model_dir), m, threshold=threshold, device=device,
                                               stain_shift=stain_shift, seed=seed, tta=tta, stain_fit=stain_fit)


def demo(output_dir: str = "histocnn-demo", **options: Any):
    """Synthetic data -> training -> evaluation, as ``histocnn demo``; returns the run result."""
    o = _train.DemoOptions()
    o.output_dir = os.fspath(output_dir)
    for key, value in options.items():
        setattr(o, key, value)
    return _train.run_demo(o)


def _signature() -> inspect.Signature:
    """Trainer's signature with every option as a keyword argument and its C++ default, so that
    help(), tab completion and inspect show the real defaults."""
    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD),
              P("data_dir", P.POSITIONAL_OR_KEYWORD, default=None),
              P("manifest", P.POSITIONAL_OR_KEYWORD, default=None),
              P("callbacks", P.POSITIONAL_OR_KEYWORD, default=()),
              P("progress", P.POSITIONAL_OR_KEYWORD, default="auto"),
              P("recipe", P.POSITIONAL_OR_KEYWORD, default=None)]
    taken = {p.name for p in params}
    params += [P(name, P.KEYWORD_ONLY, default=value) for name, value in option_defaults().items() if name not in taken]
    return inspect.Signature(params)


Trainer.__init__.__signature__ = _signature()
