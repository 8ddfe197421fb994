"""Which manifest rows train and which validate, for the training commands (``experiment.splits`` is the
experiment's repeated train/validation/test splits).

Rule (documented in the CLI help):

1. Only ``ok`` clips with a label (1 fake / 0 real) take part; rows whose ``split`` is ``test`` are held out
   and never used for training or validation.
2. If some rows have ``split`` = ``val`` / ``validation`` / ``dev``, those validate and the rest trains.
3. Otherwise rows are split by source video (``source_id``, else ``video_id``), so that a fake and its
   original fall on the same side: a source goes to validation when a hash of ``(seed, source)`` falls below
   ``val_fraction``. The hash makes the split deterministic and stable when videos are added.

``use="all"`` trains on every labelled clip (test rows included) without validation.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Literal

import pandas as pd

logger = logging.getLogger(__name__)

VAL_SPLITS = frozenset({"val", "validation", "dev"})
TEST_SPLITS = frozenset({"test"})


def _unit_hash(text: str) -> float:
    """A deterministic number in [0, 1) for ``text``."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2.0**64


def source_groups(rows: pd.DataFrame) -> pd.Series:
    """The group of each row: its ``source_id``, or its ``video_id`` where the source is empty."""
    source = rows["source_id"].astype(str).str.strip()
    missing = source.isin(["", "nan", "None"])
    return source.where(~missing, rows["video_id"].astype(str))


def filter_labelled(clips: pd.DataFrame) -> pd.DataFrame:
    """``ok`` rows with label 0 or 1 (unlabelled ones are dropped with a log line)."""
    ok = clips[clips["status"] == "ok"] if "status" in clips else clips
    labelled = ok[ok["label"].astype(int).isin([0, 1])]
    if len(labelled) < len(ok):
        logger.info("leaving out %d clip(s) without a label", len(ok) - len(labelled))
    return labelled.reset_index(drop=True)


def split_train_val(
    clips: pd.DataFrame,
    *,
    use: Literal["train", "all"] = "train",
    val_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(train rows, validation rows or None) following the module's rule."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rows = filter_labelled(clips)
    if rows.empty:
        raise ValueError("no labelled ok clips to train on")
    if use == "all":
        return rows, None
    split = rows["split"].astype(str).str.strip().str.lower()
    rows = rows[~split.isin(TEST_SPLITS)]
    split = split[rows.index]
    if split.isin(VAL_SPLITS).any():
        is_val = split.isin(VAL_SPLITS)
        logger.info("validation rows from the manifest's split column")
    else:
        groups = source_groups(rows)
        is_val = groups.map(lambda g: _unit_hash(f"{seed}:{g}") < val_fraction).astype(bool)
    train, val = rows[~is_val].reset_index(drop=True), rows[is_val].reset_index(drop=True)
    if train.empty:
        raise ValueError("the split leaves no training rows; lower val_fraction or use --split all")
    logger.info("%d training clip(s), %d validation clip(s)", len(train), len(val))
    return train, (val if len(val) else None)
