"""report.md's frame-model section and its sentences, from report.json's ``frame_model`` (see .frame_model).

The sentences are decided like Table 3's (report_text's comparison sentence): by the 95% interval of the
paired clip ROC AUC difference over the repetitions.
"""

from __future__ import annotations

import math
from typing import Any

from deepfake_detect.experiment.report_text import (
    _comparison_sentence,
    _interval_text,
    _significance,
    fmt,
    interval,
    pm,
)

__all__ = ["frame_model_conclusions", "frame_model_markdown"]

_COLUMNS = [
    ("accuracy", "Accuracy"),
    ("log_loss", "Log loss"),
    ("roc_auc", "ROC AUC"),
    ("average_precision", "AP"),
    ("eer", "EER"),
]

MEANING = (
    "What the differences measure: `+ head minus alone` is what a head trained here on the member's frozen "
    "features adds over its published classifier used as is, which mixes adaptation to this data with "
    "temporal evidence; an order-seeing head minus a frame-only head (`frame-mlp`) on the same features, "
    "trained the same way, is the temporal evidence alone."
)


def _labels(section: dict[str, Any]) -> dict[str, str]:
    return {row["name"]: row["label"] for row in section["rows"]}


def _rows_table(section: dict[str, Any]) -> list[str]:
    cols = ["Model", "level", *[name for _, name in _COLUMNS]]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in section["rows"]:
        for level in ("clip", "video"):
            cells = " | ".join(pm(row[level][key]) for key, _ in _COLUMNS)
            lines.append(f"| {row['label']} | {level} | {cells} |")
    return lines


def _differences_table(section: dict[str, Any]) -> list[str]:
    lines = [
        "| Clip ROC AUC difference | mean ± std | 95% interval | higher in |",
        "|---|---|---|---|",
    ]
    for diff in section["differences"]:
        low, high = interval(diff["auc_difference"])
        ci = "n/a" if math.isnan(low) else f"[{fmt(low)}, {fmt(high)}]"
        lines.append(
            f"| {diff['label']} | {pm(diff['auc_difference'])} | {ci} | "
            f"{diff['higher_in']} of {diff['repetitions']} |"
        )
    return lines


def frame_model_markdown(payload: dict[str, Any]) -> list[str]:
    """The section "Frame model: alone vs + heads" (no lines when the report has no frame model)."""
    section = payload.get("frame_model")
    if not section:
        return []
    family = f"family {section['family']}, " if section.get("family") else ""
    lines = [
        "## Frame model: alone vs + heads",
        "",
        f"Frame model `{section['model_dir']}` ({family}`{section['arch']}`, member {section['member']} of "
        f"{section['members']}); mean ± std over {section['repetitions']} repetition(s), on the same splits "
        "as Tables 1-3.",
        "",
        f"- Alone: {section['alone_rule']}.",
        f"- + head: {section['head_rule']}.",
        f"- What the frame model sees: {section['crops']} ({section['input']}). This is not the frame "
        "model's own face recipe, so its published numbers are not expected here.",
        "",
        *_rows_table(section),
        "",
        *_differences_table(section),
        "",
        MEANING,
        "",
    ]
    return lines


def frame_model_conclusions(payload: dict[str, Any]) -> list[str]:
    """One sentence per difference of the frame-model section, decided by its 95% interval."""
    section = payload.get("frame_model")
    if not section:
        return []
    labels = _labels(section)
    aucs = {row["name"]: row["clip"]["roc_auc"] for row in section["rows"]}
    out = []
    for diff in section["differences"]:
        first, second = labels[diff["first"]], labels[diff["second"]]
        d = diff["auc_difference"]
        if d["mean"] is None or math.isnan(d["mean"]):
            out.append(f"`{first}` vs `{second}`: ROC AUC not defined (a test set held one class).")
            continue
        auc_a, auc_b = aucs[diff["first"]], aucs[diff["second"]]
        numbers = (
            f"{pm(auc_a)} vs {pm(auc_b)}, difference {pm(d)}{_interval_text(d)}, "
            f"higher in {diff['higher_in']} of {diff['repetitions']} repetition(s){_significance(d, 0.0)}"
        )
        out.append(_comparison_sentence(first, second, diff, numbers, payload))
    return out
