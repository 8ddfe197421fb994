"""Diagnostics: how far an extractor alone separates real from fake clips, and what single frames tell a head.

The hinge loss (SPEC §2) pulls the frame embeddings of a real clip together and pushes those of a fake apart,
so the clip's *dispersion*, 1 - mean cosine similarity between its frames, is the statistic it trains. Its
ROC AUC on the test clips says how much temporal evidence the extractor put into the embeddings before any
sequence head is trained, and whether an order-blind head can read it: for embeddings of equal length the
squared length of the temporal mean of the unit embeddings equals the mean cosine similarity.

Single-frame scores (:func:`single_frame_summary`) test SPEC §2's reading of ``frame-mlp``: if frames scored
alone are at chance, no single frame gives the label away, whatever the head reaches on whole clips.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from deepfake_detect.evaluation.metrics import roc_auc
from deepfake_detect.experiment.splits import KEY_COLUMN
from deepfake_detect.infra.similarity import cosine_similarity_matrix
from deepfake_detect.models import SequenceHead


def dispersion_scores(embeddings: Mapping[str, np.ndarray], rows: pd.DataFrame) -> np.ndarray:
    """Per clip: (1 - mean cosine similarity of its frame embeddings) / 2, in [0, 1] (high = fake-like)."""
    scores = []
    for key in rows[KEY_COLUMN]:
        e = np.asarray(embeddings[key], dtype=np.float64)  # (T, D)
        scores.append((1.0 - float(np.mean(cosine_similarity_matrix(e, eps=1e-12)))) / 2.0)
    return np.clip(np.asarray(scores), 0.0, 1.0)


def dispersion_auc(embeddings: Mapping[str, np.ndarray], rows: pd.DataFrame) -> float:
    """ROC AUC of :func:`dispersion_scores` on ``rows`` (NaN when they hold one class)."""
    labels = rows["label"].to_numpy(dtype=int)
    if len(np.unique(labels)) < 2:
        return math.nan
    return roc_auc(labels, dispersion_scores(embeddings, rows))


def single_frame_scores(
    head: SequenceHead, embeddings: Mapping[str, np.ndarray], rows: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every frame of every clip scored by ``head`` alone, as a sequence of length 1.

    Returns (frame probabilities, frame labels, clip index of each frame). A head that only sums up
    single-frame evidence scores frames alone as well as whole clips; one that needs several frames cannot.
    """
    was_training = head.training
    head.eval()
    probs, labels, owners = [], [], []
    try:
        with torch.inference_mode():
            for i, (key, label) in enumerate(zip(rows[KEY_COLUMN], rows["label"], strict=True)):
                frames = torch.from_numpy(np.asarray(embeddings[key], dtype=np.float32)).unsqueeze(
                    1
                )  # (T, 1, D)
                logits = head(frames, torch.ones(frames.shape[0], dtype=torch.int64))  # (T,)
                probs.append(torch.sigmoid(logits.float()).numpy())
                labels.append(np.full(frames.shape[0], int(label)))
                owners.append(np.full(frames.shape[0], i))
    finally:
        head.train(was_training)
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(owners)


def single_frame_summary(
    head: SequenceHead, embeddings: Mapping[str, np.ndarray], rows: pd.DataFrame
) -> dict[str, float]:
    """ROC AUC of frames scored alone, and the spread (std over clips) of each clip's mean frame score.

    ``spread_real`` > ``spread_fake`` means a fake's frame scores average out over its clip while a real's
    stay alike: averaging single-frame scores then separates the classes although single frames do not.
    """
    probs, labels, owners = single_frame_scores(head, embeddings, rows)
    means = np.bincount(owners, weights=probs) / np.bincount(owners)  # (N,) mean frame score per clip
    clip_labels = rows["label"].to_numpy(dtype=int)
    both = len(np.unique(labels)) == 2
    return {
        "frame_auc": roc_auc(labels, probs) if both else math.nan,
        "spread_real": float(np.std(means[clip_labels == 0])) if (clip_labels == 0).any() else math.nan,
        "spread_fake": float(np.std(means[clip_labels == 1])) if (clip_labels == 1).any() else math.nan,
    }
