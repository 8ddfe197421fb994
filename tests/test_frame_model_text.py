"""The frame-model section's sentences and table against hand-made numbers: each branch of the interval
decision fires where it must and quotes the numbers it was decided on."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepfake_detect.experiment.frame_model_text import frame_model_conclusions, frame_model_markdown
from deepfake_detect.experiment.summary import stats

METRICS = ("accuracy", "log_loss", "roc_auc", "average_precision", "eer")


def _row(name: str, label: str, aucs: list[float]) -> dict[str, Any]:
    block = {
        m: stats(np.asarray(aucs if m == "roc_auc" else [0.5] * len(aucs), dtype=float)) for m in METRICS
    }
    return {"name": name, "label": label, "evidence": None, "clip": block, "video": block}


def _payload(alone: list[float], lstm: list[float], independent: bool = False) -> dict[str, Any]:
    """A report payload whose frame-model section is laid out as FrameModelRows.report writes it."""
    diff = np.asarray(lstm, dtype=float) - np.asarray(alone, dtype=float)
    finite = diff[np.isfinite(diff)]
    section = {
        "model_dir": "models/b7",
        "member": 0,
        "members": 7,
        "family": "dfdc-winner",
        "arch": "b7",
        "input": "isotropic-pad to 380 px",
        "crops": "the clip store's crops",
        "alone_rule": "mean over its crops",
        "head_rule": "pooled features",
        "repetitions": len(alone),
        "rows": [_row("alone", "b7 alone", alone), _row("lstm", "b7 + lstm", lstm)],
        "differences": [
            {
                "first": "lstm",
                "second": "alone",
                "label": "lstm minus alone",
                "auc_difference": stats(diff),
                "higher_in": int((finite > 0).sum()),
                "repetitions": int(finite.size),
            }
        ],
    }
    return {"settings": {"independent_data": independent}, "frame_model": section}


def _one(payload: dict[str, Any]) -> str:
    (sentence,) = frame_model_conclusions(payload)
    return sentence


def test_an_interval_above_zero_says_the_head_beats_the_frame_model_alone() -> None:
    clear = _one(_payload([0.6, 0.62, 0.58], [0.9, 0.93, 0.88]))
    assert clear.startswith("`b7 + lstm` clearly beats `b7 alone`") and "excludes 0" in clear
    assert "difference 0.303 ± 0.006, 95% interval [0.289, 0.318]" in clear and "higher in 3 of 3" in clear
    assert "not independent replications" in clear
    small = _one(_payload([0.80, 0.81, 0.82, 0.80], [0.85, 0.87, 0.86, 0.86], independent=True))
    assert small.startswith("`b7 + lstm` beats `b7 alone`") and "clearly" not in small
    assert "each repetition generated its own videos" in small


def test_an_interval_below_zero_says_the_frame_model_alone_wins() -> None:
    worse = _one(_payload([0.9, 0.92, 0.91], [0.6, 0.62, 0.61]))
    assert worse.startswith("`b7 alone` beats `b7 + lstm`") and "difference -0.300" in worse


def test_an_interval_holding_zero_or_missing_is_undecided() -> None:
    mixed = _one(_payload([0.7, 0.6, 0.9], [0.75, 0.7, 0.8]))
    assert mixed.startswith("Undecided: `b7 + lstm` leads on average over `b7 alone`")
    assert "includes 0" in mixed
    behind = _one(_payload([0.75, 0.7, 0.8], [0.7, 0.6, 0.9]))
    assert "does not lead on average" in behind
    one = _one(_payload([0.6], [0.9]))
    assert one.startswith("Undecided") and "with one repetition there is no interval" in one
    undefined = _one(_payload([math.nan, math.nan], [0.6, 0.7]))
    assert "not defined" in undefined and "beats" not in undefined


def test_markdown_puts_the_rows_and_the_difference_side_by_side() -> None:
    lines = frame_model_markdown(_payload([0.6, 0.62, 0.58], [0.9, 0.93, 0.88]))
    text = "\n".join(lines)
    assert lines[0] == "## Frame model: alone vs + heads"
    assert "| b7 alone | clip | 0.500 ± 0.000 | 0.500 ± 0.000 | 0.600 ± 0.020 |" in text
    assert "| b7 + lstm | video |" in text
    assert "| lstm minus alone | 0.303 ± 0.006 | [0.289, 0.318] | 3 of 3 |" in text
    assert "member 0 of 7" in text and "not the frame model's own face recipe" in text
    assert frame_model_markdown({"settings": {}}) == [] and frame_model_conclusions({"settings": {}}) == []
