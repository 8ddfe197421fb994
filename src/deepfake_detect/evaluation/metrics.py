"""Binary classification metrics as pure numpy functions (SPEC §2 'Evaluation').

Convention: ``y_true`` holds 1 = fake (positive class), 0 = real; ``y_prob`` holds P(fake) in [0, 1].
Each function validates its input and raises ``ValueError`` with the reason for bad input.

The ranking metrics (``roc_points``, ``roc_auc``, ``average_precision``, ``equal_error_rate``) are
undefined when only one class is present and raise ``ValueError`` then; ``summarize`` reports them as
NaN in that case (accuracy and log loss are still defined). Ties in ``y_prob`` are handled by
treating each distinct score as one threshold, as scikit-learn does (a tied group moves the ROC
curve diagonally; AUC counts a tied fake/real pair as one half).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def _check(y_true: ArrayLike, y_prob: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate and convert to float arrays: same length >= 1, labels in {0, 1}, probs finite in [0, 1]."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_prob, dtype=np.float64)
    if t.ndim != 1 or p.ndim != 1:
        raise ValueError(f"y_true and y_prob must be one-dimensional, got shapes {t.shape} and {p.shape}")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_prob has {p.size}")
    if t.size == 0:
        raise ValueError("no samples to evaluate")
    if not np.isin(t, (0.0, 1.0)).all():
        raise ValueError(f"y_true must hold only 0 (real) and 1 (fake); found {np.unique(t)[:5].tolist()}")
    if not np.isfinite(p).all() or p.min() < 0.0 or p.max() > 1.0:
        raise ValueError("y_prob must hold finite probabilities in [0, 1]")
    return t, p


def _require_both_classes(t: FloatArray, what: str) -> None:
    n_fake = int(t.sum())
    if n_fake == 0 or n_fake == t.size:
        only = "fake" if n_fake else "real"
        raise ValueError(f"{what} is undefined when every sample is {only} (both classes are needed)")


def accuracy(y_true: ArrayLike, y_prob: ArrayLike, threshold: float = 0.5) -> float:
    """Share of correct verdicts; a sample is called fake when ``y_prob >= threshold``."""
    t, p = _check(y_true, y_prob)
    return float(np.mean((p >= threshold) == (t == 1.0)))


def log_loss(y_true: ArrayLike, y_prob: ArrayLike, eps: float = 1e-15) -> float:
    """Mean binary cross-entropy in nats, predictions clipped to [eps, 1 - eps] (the DFDC metric)."""
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must lie in (0, 0.5), got {eps}")
    t, p = _check(y_true, y_prob)
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(t * np.log(p) + (1.0 - t) * np.log1p(-p)))


def roc_points(y_true: ArrayLike, y_prob: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """ROC curve: (fpr, tpr, thresholds), one point per distinct score plus the origin.

    Thresholds decrease; point k counts samples with ``y_prob >= thresholds[k]`` as fake. The first
    point is (0, 0) with threshold +inf, the last is (1, 1).
    """
    t, p = _check(y_true, y_prob)
    _require_both_classes(t, "the ROC curve")
    order = np.argsort(-p, kind="mergesort")  # descending scores, stable
    p_sorted, t_sorted = p[order], t[order]
    last_of_group = np.r_[np.nonzero(np.diff(p_sorted))[0], p_sorted.size - 1]  # end of each tie group
    tps = np.cumsum(t_sorted)[last_of_group]
    fps = (last_of_group + 1) - tps
    fpr = np.r_[0.0, fps / fps[-1]]
    tpr = np.r_[0.0, tps / tps[-1]]
    thresholds = np.r_[np.inf, p_sorted[last_of_group]]
    return fpr, tpr, thresholds


def roc_auc(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Area under the ROC curve (trapezoids between the points of :func:`roc_points`)."""
    fpr, tpr, _ = roc_points(y_true, y_prob)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def average_precision(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """AP = sum over thresholds of (recall_k - recall_{k-1}) * precision_k (no interpolation)."""
    t, p = _check(y_true, y_prob)
    _require_both_classes(t, "average precision")
    fpr, tpr, _ = roc_points(t, p)
    n_fake, n_real = t.sum(), t.size - t.sum()
    tps, fps = tpr[1:] * n_fake, fpr[1:] * n_real
    precision = tps / (tps + fps)  # every point past the origin has tps + fps >= 1
    return float(np.sum(np.diff(tpr) * precision))


def equal_error_rate(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """The error rate where FPR = FNR (= 1 - TPR), linearly interpolated on the ROC curve.

    Walking the curve from (0, 0), FPR - FNR rises from -1 to +1; the EER is taken on the first
    segment where it changes sign, interpolating both rates linearly along that segment.
    """
    fpr, tpr, _ = roc_points(y_true, y_prob)
    gap = fpr - (1.0 - tpr)  # (K,) from -1 up to +1, non-decreasing
    k = int(np.argmax(gap >= 0.0))  # first point at or past the crossing (k >= 1 since gap[0] = -1)
    g0, g1 = gap[k - 1], gap[k]
    w = 0.0 if g1 == g0 else -g0 / (g1 - g0)  # fraction of the segment k-1 -> k
    return float(fpr[k - 1] + w * (fpr[k] - fpr[k - 1]))


def summarize(
    y_true: ArrayLike, y_prob: ArrayLike, eps: float = 1e-15, threshold: float = 0.5
) -> dict[str, float]:
    """All metrics at once, plus counts; ranking metrics are NaN when one class is missing."""
    t, p = _check(y_true, y_prob)
    n_fake = int(t.sum())
    both = 0 < n_fake < t.size
    nan = math.nan
    return {
        "n": float(t.size),
        "n_fake": float(n_fake),
        "n_real": float(t.size - n_fake),
        "accuracy": accuracy(t, p, threshold),
        "log_loss": log_loss(t, p, eps),
        "roc_auc": roc_auc(t, p) if both else nan,
        "average_precision": average_precision(t, p) if both else nan,
        "eer": equal_error_rate(t, p) if both else nan,
        "eps": float(eps),
        "threshold": float(threshold),
    }
