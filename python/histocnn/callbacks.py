"""Training callbacks written in Python, called by the C++ trainer.

Subclass :class:`Callback` and override the Keras-style hooks::

    class PrintAUC(histocnn.Callback):
        def on_epoch_end(self, epoch, logs):
            print(epoch, logs["val_auc"])
            if logs["val_auc"] > 0.99:
                self.stop_training = True

    histocnn.Trainer(data_dir="patches/", callbacks=[PrintAUC()]).fit()
"""
from __future__ import annotations

from typing import Dict, Optional

from ._loader import _histocnn

_train = _histocnn.train

_LOG_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_auc", "learning_rate", "seconds",
             "images_per_second")


class Callback(_train.CallbackBase):
    """Base class: override on_train_begin(logs), on_epoch_begin(epoch), on_batch_end(batch, loss),
    on_epoch_end(epoch, logs), on_train_end(). Set ``self.stop_training = True`` to stop after the
    epoch; ``self.learning_rate`` reads or changes the optimiser's learning rate."""

    def __init__(self):
        super().__init__()
        self.context = None
        self.stop_training = False

    # Overridable hooks (Keras names and arguments).
    def on_train_begin(self, logs: Optional[Dict] = None):
        pass

    def on_epoch_begin(self, epoch: int):
        pass

    def on_batch_end(self, batch: int, loss: float):
        pass

    def on_epoch_end(self, epoch: int, logs: Dict[str, float]):
        pass

    def on_train_end(self):
        pass

    @property
    def learning_rate(self) -> float:
        return self.context.learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float):
        self.context.learning_rate = value

    # Called from C++ (with the GIL held by pybind11).
    def _on_train_begin(self, context):
        self.context = context
        self.stop_training = False
        self.on_train_begin({"epochs": context.epochs, "batches_per_epoch": context.batches_per_epoch})

    def _on_epoch_begin(self, context, epoch):
        self.context = context
        self.on_epoch_begin(epoch)

    def _on_batch_end(self, context, batch, loss):
        self.context = context
        self.on_batch_end(batch, loss)

    def _on_epoch_end(self, context, record):
        self.context = context
        self.on_epoch_end(record.epoch, {k: getattr(record, k) for k in _LOG_KEYS})
        if self.stop_training:
            context.stop_training = True

    def _on_train_end(self, context):
        self.context = context
        self.on_train_end()


class TqdmProgress(Callback):
    """A tqdm progress bar per epoch (a notebook widget under Jupyter, text in a terminal)."""

    def __init__(self):
        super().__init__()
        from tqdm.auto import tqdm
        self._tqdm = tqdm
        self._bar = None
        self._epochs = 0
        self._loss = 0.0

    def on_train_begin(self, logs=None):
        self._epochs = logs["epochs"]
        self._batches = logs["batches_per_epoch"]

    def on_epoch_begin(self, epoch):
        self._bar = self._tqdm(total=self._batches, desc=f"epoch {epoch}/{self._epochs}", unit="batch", leave=True)
        self._loss, self._n = 0.0, 0

    def on_batch_end(self, batch, loss):
        self._loss += loss
        self._n += 1
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{self._loss / self._n:.4f}", refresh=False)

    def on_epoch_end(self, epoch, logs):
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{logs['train_loss']:.4f}", val_auc=f"{logs['val_auc']:.4f}")
            self._bar.close()
            self._bar = None

    def on_train_end(self):
        if self._bar is not None:  # interrupted mid-epoch
            self._bar.close()
            self._bar = None
