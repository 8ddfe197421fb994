"""Loss curves per epoch (the paper's figures 4 and 5): training loss and validation loss side by side.

Figures are built with matplotlib's object API on the Agg canvas: no pyplot, so no global figure state,
no GUI backend and nothing left open after a call.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deepfake_detect.infra.files import atomic_path


def plot_loss_curves(history: pd.DataFrame, path: Path, *, title: str, loss_name: str = "loss") -> Path:
    """Write a PNG with two panels (training, validation) of ``history``'s per-epoch losses.

    Args:
        history: columns ``epoch``, ``train_loss``, ``val_loss`` (NaN where not measured).
        path: the PNG to write (its folder is created).
        title: the figure's title, e.g. "Feature extractor (resnet50)".
        loss_name: the y-axis label, e.g. "hinge loss" or "BCE loss".
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2, sharey=False)
    panels = (("train_loss", "Training loss", "tab:blue"), ("val_loss", "Validation loss", "tab:orange"))
    for ax, (column, label, colour) in zip(axes, panels, strict=True):
        data = history[["epoch", column]].dropna() if column in history else pd.DataFrame()
        if len(data):
            ax.plot(data["epoch"], data[column], marker="o", markersize=3, color=colour)
        else:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(loss_name)
        ax.grid(True, alpha=0.3)
    figure.suptitle(title)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path
