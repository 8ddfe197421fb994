"""Model cards (SPEC §9): what a model directory says about itself, and the warnings every output repeats.

The rule for the synthetic-data warning: a model whose card lists it under ``warnings`` (the demo and
every experiment on the built-in synthetic data write it there) carries it; so does a format-1 directory
(written before cards existed) whose backbone is the demo's ``cnn4``, because the demo was the only
maker of such directories that shipped. Every other model without a card carries no warning; an
imported published detector carries the warnings its importer wrote (none, for the published families).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SYNTHETIC_WARNING", "card_warnings", "synthetic_card"]

SYNTHETIC_WARNING = (
    "this model was trained on synthetic data only (the built-in benchmark): its verdicts on real videos "
    "mean nothing; import a published detector (deepfake-detect import-model) or train on real data"
)


def synthetic_card(description: str) -> dict[str, Any]:
    """The card of a model trained on the built-in synthetic benchmark."""
    return {
        "family": "deepfake-detect (trained by this tool)",
        "training_data": f"trained on synthetic data only: {description}",
        "intended_use": "a demonstration of the pipeline; not for judging real videos",
        "warnings": [SYNTHETIC_WARNING],
    }


def card_warnings(card: dict[str, Any], *, format_version: int, backbone: str | None) -> list[str]:
    """The warnings that every output using this model must show (see the module docstring)."""
    warnings = [str(w) for w in card.get("warnings", []) if w]
    if not card and format_version < 2 and backbone == "cnn4":
        warnings.append(SYNTHETIC_WARNING + " (a format-1 model with the demo's cnn4 backbone)")
    return warnings
