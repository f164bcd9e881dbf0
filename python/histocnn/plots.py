"""matplotlib figures for notebooks: training curves, ROC and PR curves, confusion matrix,
reliability diagram, a grid of patches with predictions, and size versus accuracy.

    fig = histocnn.plots.training_curves(history)
    fig = histocnn.plots.roc(y_true, p)

Each function returns a matplotlib Figure (and draws into `ax` when given). The numbers come from
histocnn.metrics, so they are the ones the reports print.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ._loader import _histocnn

_metrics = _histocnn.metrics


def _axes(ax, figsize=(5, 4)):
    import matplotlib.pyplot as plt
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def training_curves(history, figsize=(10, 4)):
    """Loss, and accuracy/AUC, per epoch for train and validation (a History or a DataFrame)."""
    import matplotlib.pyplot as plt
    rows = history.epochs if hasattr(history, "epochs") else history.to_dict("records")
    epochs = [r["epoch"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize)
    left.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    left.plot(epochs, [r["val_loss"] for r in rows], "o-", label="validation")
    left.set(xlabel="epoch", ylabel="loss", title="loss")
    right.plot(epochs, [r["train_accuracy"] for r in rows], "o-", label="train accuracy")
    right.plot(epochs, [r["val_accuracy"] for r in rows], "o-", label="val accuracy")
    right.plot(epochs, [r["val_auc"] for r in rows], "o--", label="val AUC")
    right.set(xlabel="epoch", title="accuracy / AUC")
    for a in (left, right):
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    return fig


def roc(y_true: Sequence[int], p: Sequence[float], ax=None):
    fpr, tpr, _ = _metrics.roc_curve(list(map(int, y_true)), list(map(float, p)))
    auc = _metrics.roc_auc(list(map(int, y_true)), list(map(float, p)))
    fig, ax = _axes(ax)
    ax.plot(fpr, tpr, label=f"AUC = {auc:.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    ax.legend(loc="lower right")
    return fig


def precision_recall(y_true: Sequence[int], p: Sequence[float], ax=None):
    y, s = list(map(int, y_true)), list(map(float, p))
    precision, recall, _ = _metrics.precision_recall_curve(y, s)
    ap = _metrics.average_precision(y, s)
    fig, ax = _axes(ax)
    ax.step(recall, precision, where="post", label=f"AP = {ap:.3f}")
    ax.axhline(np.mean(y), ls="--", color="grey", label="chance")
    ax.set(xlabel="recall", ylabel="precision", title="precision-recall curve")
    ax.legend(loc="lower left")
    return fig


def confusion_matrix(y_true: Sequence[int], p: Sequence[float], threshold: float = 0.5,
                     class_names=("IDC-negative", "IDC-positive"), ax=None):
    pred = [int(v >= threshold) for v in p]
    cm = _metrics.confusion_matrix(list(map(int, y_true)), pred)
    m = np.array([[cm.tn, cm.fp], [cm.fn, cm.tp]])
    fig, ax = _axes(ax)
    ax.imshow(m, cmap="Blues")
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=class_names, yticklabels=class_names, xlabel="predicted",
           ylabel="true", title=f"confusion matrix (threshold {threshold:.2f})")
    return fig


def reliability(y_true: Sequence[int], p: Sequence[float], n_bins: int = 10, ax=None):
    report = _metrics.calibration_report(list(map(int, y_true)), list(map(float, p)), n_bins)
    bins = [b for b in report.bins if b.count > 0]
    fig, ax = _axes(ax)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.plot([b.mean_confidence for b in bins], [b.positive_rate for b in bins], "o-", label=f"ECE = {report.ece:.3f}")
    ax.set(xlabel="mean predicted P(positive)", ylabel="observed positive rate", title="reliability diagram")
    ax.legend()
    return fig


def patch_grid(images, p: Optional[Sequence[float]] = None, labels: Optional[Sequence[int]] = None, columns: int = 8,
               threshold: float = 0.5):
    """A grid of patches (file paths or HxWx3 arrays), titled with P(positive) and the true label."""
    import matplotlib.pyplot as plt
    from PIL import Image
    arrays = [np.asarray(Image.open(i).convert("RGB")) if isinstance(i, (str, bytes)) or hasattr(i, "__fspath__")
              else np.asarray(i) for i in images]
    rows = max(1, (len(arrays) + columns - 1) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.8 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(arrays):
            continue
        ax.imshow(arrays[k])
        title = []
        if p is not None:
            title.append(f"p={p[k]:.2f}")
        if labels is not None:
            title.append(f"y={labels[k]}")
        if title:
            wrong = p is not None and labels is not None and (p[k] >= threshold) != bool(labels[k])
            ax.set_title(" ".join(title), fontsize=8, color="red" if wrong else "black")
    fig.tight_layout()
    return fig


def size_vs_accuracy(table, ax=None):
    """Test accuracy against parameters (millions) from a compare results table (CSV path or DataFrame)."""
    import pandas as pd
    df = pd.read_csv(table) if isinstance(table, str) else table
    fig, ax = _axes(ax)
    ax.scatter(df["parameters"] / 1e6, df["test_accuracy"])
    for _, r in df.iterrows():
        ax.annotate(str(r["label"]), (r["parameters"] / 1e6, r["test_accuracy"]), fontsize=8)
    ax.set(xlabel="parameters (millions)", ylabel="test accuracy", title="accuracy versus model size")
    return fig
