"""Video-level rules of published frame classifiers (SPEC §9), in :data:`FRAME_AGGREGATIONS`.

A rule is ``fn(probs (M,), frames (M,), **kwargs) -> float``: one member's P(fake) of every crop of the
video and the sampled frame each crop came from. An ensemble's members are combined by the mean.

- ``confident`` (the DFDC winner's ``confident_strategy``, t = 0.8): with n crops, if more than
  n // 2.5 and more than 11 crops exceed t, the mean of those; else if more than 0.9 n crops are below
  0.2, the mean of those; else the mean of all.
- ``max-face-mean-frame`` (Self-Blended Images): the max over a frame's faces, then the mean over frames.
- ``mean``: the mean over all crops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from deepfake_detect.registry import Registry

__all__ = ["FRAME_AGGREGATIONS", "FrameAggregation", "confident", "max_face_mean_frame"]

FrameAggregation = Callable[..., float]
FRAME_AGGREGATIONS: Registry[FrameAggregation] = Registry("frame aggregation")


@FRAME_AGGREGATIONS.register("confident")
def confident(probs: np.ndarray, frames: np.ndarray, t: float = 0.8, **_: Any) -> float:
    p = np.asarray(probs, dtype=np.float64)
    n = len(p)
    fakes = int(np.count_nonzero(p > t))
    if fakes > n // 2.5 and fakes > 11:
        return float(np.mean(p[p > t]))
    if np.count_nonzero(p < 0.2) > 0.9 * n:
        return float(np.mean(p[p < 0.2]))
    return float(np.mean(p))


@FRAME_AGGREGATIONS.register("max-face-mean-frame")
def max_face_mean_frame(probs: np.ndarray, frames: np.ndarray, **_: Any) -> float:
    p, f = np.asarray(probs, dtype=np.float64), np.asarray(frames)
    return float(np.mean([p[f == frame].max() for frame in np.unique(f)]))


@FRAME_AGGREGATIONS.register("mean")
def mean(probs: np.ndarray, frames: np.ndarray, **_: Any) -> float:
    return float(np.mean(np.asarray(probs, dtype=np.float64)))
