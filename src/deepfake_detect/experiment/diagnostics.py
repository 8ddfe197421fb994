"""Diagnostics that need no trained head: how far an extractor alone separates real from fake clips.

The hinge loss (SPEC §2) pulls the frame embeddings of a real clip together and pushes those of a fake apart,
so the clip's *dispersion*, 1 - mean cosine similarity between its frames, is the statistic it trains. Its
ROC AUC on the test clips says how much temporal evidence the extractor put into the embeddings before any
sequence head is trained, and whether an order-blind head can read it: for embeddings of equal length the
squared length of the temporal mean of the unit embeddings equals the mean cosine similarity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from deepfake_detect.evaluation.metrics import roc_auc
from deepfake_detect.experiment.splits import KEY_COLUMN


def dispersion_scores(embeddings: Mapping[str, np.ndarray], rows: pd.DataFrame) -> np.ndarray:
    """Per clip: (1 - mean cosine similarity of its frame embeddings) / 2, in [0, 1] (high = fake-like)."""
    scores = []
    for key in rows[KEY_COLUMN]:
        e = np.asarray(embeddings[key], dtype=np.float64)  # (T, D)
        unit = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        scores.append((1.0 - float(np.mean(unit @ unit.T))) / 2.0)
    return np.clip(np.asarray(scores), 0.0, 1.0)


def dispersion_auc(embeddings: Mapping[str, np.ndarray], rows: pd.DataFrame) -> float:
    """ROC AUC of :func:`dispersion_scores` on ``rows`` (NaN when they hold one class)."""
    labels = rows["label"].to_numpy(dtype=int)
    if len(np.unique(labels)) < 2:
        return math.nan
    return roc_auc(labels, dispersion_scores(embeddings, rows))
