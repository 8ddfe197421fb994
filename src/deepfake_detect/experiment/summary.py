"""Summaries of a number measured once per repetition (shared by the report and the model card)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import t as student_t


def stats(values: np.ndarray) -> dict[str, Any]:
    """Mean, sample std (ddof=1), the 95% interval of the mean and the values (NaN values, e.g. AUC on one
    class, are left out). The interval is Student's t: mean ± t(0.975, n - 1) · std / sqrt(n)."""
    finite = values[np.isfinite(values)]
    mean = float(finite.mean()) if finite.size else math.nan
    std = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
    half = (
        float(student_t.ppf(0.975, finite.size - 1)) * std / math.sqrt(finite.size) if finite.size > 1 else 0
    )
    ci = [mean - half, mean + half] if finite.size > 1 else [math.nan, math.nan]
    return {"mean": mean, "std": std, "n": int(finite.size), "ci95": ci, "values": [float(v) for v in values]}
