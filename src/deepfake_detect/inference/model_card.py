"""What a model directory says about itself: kind, card and the warnings every output must repeat."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepfake_detect.models.cards import card_warnings
from deepfake_detect.models.frame_dir import model_dir_kind, read_frame_model_config
from deepfake_detect.models.io import read_model_config

__all__ = ["describe_model_dir", "sequence_card"]


def sequence_card(card: dict[str, Any], format_version: int, backbone: str) -> dict[str, Any]:
    """A sequence model's card with its ``warnings`` completed by the rule of ``models.cards``."""
    return {**card, "warnings": card_warnings(card, format_version=format_version, backbone=backbone)}


def describe_model_dir(path: Path | str) -> dict[str, Any]:
    """``{"path", "kind", "format_version", "card", "warnings", ...}`` of a model directory."""
    path = Path(path)
    if model_dir_kind(path) == "frame":
        frame = read_frame_model_config(path)
        card = dict(frame.card)
        return {
            "path": str(path),
            "kind": "frame",
            "format_version": frame.format_version,
            "network": frame.network.model_dump(mode="json"),
            "members": [m.model_dump(mode="json") for m in frame.members],
            "recipe": frame.recipe.model_dump(mode="json"),
            "card": card,
            "warnings": list(card.get("warnings", [])),
        }
    config = read_model_config(path)
    card = sequence_card(config.card, config.format_version, config.backbone)
    return {
        "path": str(path),
        "kind": "sequence",
        "format_version": config.format_version,
        "backbone": config.backbone,
        "head": config.head,
        "card": card,
        "warnings": card["warnings"],
    }
