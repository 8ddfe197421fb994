"""Temperature scaling (Guo et al., 2017): one scalar T > 0 that turns a head's logit z into z / T.

T is fitted on *validation* clips by minimising their log loss (the DFDC metric); it never changes the
ranking of clips (ROC AUC, AP and EER stay the same) and leaves the decision at probability 0.5 where it
was (z = 0 stays 0), but it moves every other threshold: ``p >= t`` after calibration is
``z >= T * logit(t)`` before it.

The log loss of sigmoid(b * z) is convex in b = 1 / T, and its derivative mean((sigmoid(b z) - y) z) grows
with b, so the minimum is found by bisection on that derivative over log b (no optimiser library).
"""

from __future__ import annotations

import logging
import math

import numpy as np
from numpy.typing import ArrayLike

logger = logging.getLogger(__name__)

LOGIT_EPS = 1e-7  # probabilities are clipped to [eps, 1 - eps] before taking their logit
_LOG_B_RANGE = (-7.0, 7.0)  # T between e^-7 and e^7


def at_bound(temperature: float) -> bool:
    """True when a fitted T is one of fit_temperature's bounds (e^-7 or e^7): the fit hit its cap (e.g.
    validation scores that rank the clips backwards), so T says little beyond "flatten" or "sharpen"."""
    log_t = math.log(temperature) if temperature > 0 else math.nan
    return any(math.isclose(log_t, -b, abs_tol=1e-9) for b in _LOG_B_RANGE)


def logit(p: ArrayLike, eps: float = LOGIT_EPS) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.log(q) - np.log1p(-q)


def sigmoid(z: ArrayLike) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def apply_temperature(probabilities: ArrayLike, temperature: float) -> np.ndarray:
    """sigmoid(logit(p) / T): calibrated probabilities (T = 1 returns p up to the logit clipping)."""
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    return sigmoid(logit(probabilities) / temperature)


def _slope(b: float, z: np.ndarray, y: np.ndarray) -> float:
    """d/db of mean log loss of sigmoid(b z): mean((sigmoid(b z) - y) z)."""
    return float(np.mean((sigmoid(b * z) - y) * z))


def fit_temperature(probabilities: ArrayLike, labels: ArrayLike, iterations: int = 80) -> float:
    """The T > 0 that minimises the log loss of ``apply_temperature(probabilities, T)`` on ``labels``.

    Returns 1.0 (no change) when the clips hold one class only or every logit is 0; T is bounded to
    [e^-7, e^7] (a head whose scores rank the clips backwards gets the largest T, i.e. p near 0.5).
    """
    z, y = logit(probabilities), np.asarray(labels, dtype=np.float64).reshape(-1)
    if z.shape != y.shape:
        raise ValueError(f"{z.size} probabilities for {y.size} labels")
    if y.size == 0 or y.min() == y.max() or not np.any(z):
        logger.info("temperature not fitted (%d clips, one class or no signal): T = 1", y.size)
        return 1.0
    low, high = _LOG_B_RANGE
    if _slope(math.exp(low), z, y) >= 0:
        return math.exp(-low)
    if _slope(math.exp(high), z, y) <= 0:
        return math.exp(-high)
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        if _slope(math.exp(mid), z, y) < 0:
            low = mid
        else:
            high = mid
    return math.exp(-0.5 * (low + high))
