"""Figures for evaluations and reports: ROC curves, score histograms, loss curves (paper figures 4-5),
reliability diagrams.

Matplotlib's object-oriented API on the Agg canvas only (no pyplot, no global state, no display needed).
Every function writes one PNG atomically and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deepfake_detect.evaluation.metrics import roc_auc, roc_points
from deepfake_detect.infra.files import atomic_path

_DPI = 110


def _save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` as PNG through a temporary file (atomic rename)."""
    path = Path(path)
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    return path


def _two_classes(y_true: np.ndarray) -> bool:
    return len(np.unique(y_true)) == 2


def roc_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path, *, title: str = "ROC"
) -> Path:
    """ROC curves, one per name: ``curves[name] = (y_true, fake_probability)``; the legend shows the AUC."""
    fig = Figure(figsize=(5.0, 5.0))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    for name, (y_true, y_prob) in curves.items():
        y_true = np.asarray(y_true)
        if not _two_classes(y_true):
            ax.plot([], [], label=f"{name} (one class only: no ROC)")
            continue
        fpr, tpr, _ = roc_points(y_true, np.asarray(y_prob))
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(y_true, np.asarray(y_prob)):.3f})")
    ax.set_xlabel("false positive rate (real called fake)")
    ax.set_ylabel("true positive rate (fake called fake)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return _save(fig, path)


def score_histogram(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    path: Path,
    *,
    threshold: float = 0.5,
    bins: int = 20,
    title: str = "Fake probability by true class",
) -> Path:
    """Histogram of predicted fake probabilities, real and fake overlaid, with the decision threshold."""
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1).tolist()
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    for label, name, color in ((0, "real", "tab:blue"), (1, "fake", "tab:red")):
        scores = y_prob[y_true == label]
        ax.hist(scores, bins=edges, alpha=0.55, color=color, label=f"{name} (n={len(scores)})")
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("predicted fake probability")
    ax.set_ylabel("count")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, path)


def _plot_histories(ax: Axes, histories: Mapping[str, pd.DataFrame], column: str, title: str) -> None:
    plotted = False
    for name, history in histories.items():
        if column not in history.columns:
            continue
        values = history[["epoch", column]].dropna()
        if values.empty:
            continue
        ax.plot(values["epoch"], values[column], marker="o", markersize=3, label=name)
        plotted = True
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if plotted:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def loss_curves(histories: Mapping[str, pd.DataFrame], path: Path, *, title: str = "Loss") -> Path:
    """Training loss (left) and validation loss (right) per epoch; one line per named history.

    Each history has columns ``epoch``, ``train_loss`` and ``val_loss`` (missing values are skipped).
    """
    fig = Figure(figsize=(10.0, 4.0))
    left = fig.add_subplot(1, 2, 1)
    right = fig.add_subplot(1, 2, 2)
    _plot_histories(left, histories, "train_loss", "training loss")
    _plot_histories(right, histories, "val_loss", "validation loss")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def reliability_bins(y_true: np.ndarray, y_prob: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Equal-width probability bins: mean predicted probability, fraction of fakes and count per bin."""
    y_true, y_prob = np.asarray(y_true, dtype=float), np.asarray(y_prob, dtype=float)
    index = np.minimum((y_prob * bins).astype(int), bins - 1)  # p = 1 falls in the last bin
    frame = pd.DataFrame({"bin": index, "p": y_prob, "y": y_true})
    grouped = frame.groupby("bin").agg(
        mean_probability=("p", "mean"), fake_fraction=("y", "mean"), n=("y", "size")
    )
    return grouped.reset_index()


def reliability_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: Path,
    *,
    title: str = "Reliability",
    bins: int = 10,
) -> Path:
    """Reliability diagram: per curve ``(y_true, fake_probability)``, the fraction of fakes against the
    mean predicted probability in each of ``bins`` equal-width bins (calibrated: on the diagonal)."""
    fig = Figure(figsize=(5.0, 5.0))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    for name, (y_true, y_prob) in curves.items():
        table = reliability_bins(y_true, y_prob, bins)
        label = f"{name} ({len(y_true)} clips)"
        ax.plot(table["mean_probability"], table["fake_fraction"], marker="o", label=label)
    ax.set_xlabel("mean predicted P(fake) in the bin")
    ax.set_ylabel("fraction of fake clips in the bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return _save(fig, path)
