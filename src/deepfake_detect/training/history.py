"""Per-epoch loss history of a training run: recorded by a callback, kept in checkpoints, saved as CSV.

The history lives inside each Lightning checkpoint (the callback's state), so a resumed run still has
the whole curve; ``history.csv`` beside the weights is written from it when the run ends.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
from lightning.pytorch.callbacks import Callback

from deepfake_detect.infra.files import atomic_path

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss"]
HISTORY_FILE = "history.csv"


class HistoryCallback(Callback):
    """Records ``train_loss`` and ``val_loss`` after every epoch; its state is saved in each checkpoint."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        row = {"epoch": float(trainer.current_epoch + 1)}
        for name in HISTORY_COLUMNS[1:]:
            value = metrics.get(name)
            row[name] = float(value) if value is not None else math.nan
        self.rows.append(row)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state_dict.get("rows", [])]

    def frame(self) -> pd.DataFrame:
        return history_frame(self.rows)


def history_frame(rows: list[dict[str, float]] | None = None) -> pd.DataFrame:
    """A history table with columns epoch (int), train_loss, val_loss (NaN where not measured)."""
    frame = pd.DataFrame(rows or [], columns=HISTORY_COLUMNS)
    return frame.astype({"epoch": "int64", "train_loss": "float64", "val_loss": "float64"})


def write_history(target: Path, history: pd.DataFrame) -> Path:
    """Write a history table as CSV (no index), atomically; returns ``target``."""
    with atomic_path(target) as tmp:
        history.to_csv(tmp, index=False)
    return target
