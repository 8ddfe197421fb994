"""What a model directory says about itself: kind, card and the warnings every output must repeat."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepfake_detect.inference.options import DetectOptions, Settings
from deepfake_detect.models.cards import card_warnings
from deepfake_detect.models.dir_config import ModelDirConfig, model_dir_kind, read_model_config
from deepfake_detect.models.frame_config import FrameModelConfig, read_frame_model_config

__all__ = ["describe_model_dir", "frame_model_info", "sequence_card", "sequence_model_info"]


def sequence_card(card: dict[str, Any], format_version: int, backbone: str) -> dict[str, Any]:
    """A sequence model's card with its ``warnings`` completed by the rule of ``models.cards``."""
    return {**card, "warnings": card_warnings(card, format_version=format_version, backbone=backbone)}


def sequence_model_info(
    config: ModelDirConfig,
    settings: Settings,
    *,
    path: Path | None,
    engine: str,
    device: str,
    precision: str | None,
) -> dict[str, Any]:
    """The ``model`` object of the detect JSON for a sequence model (from ``config.json`` alone)."""
    card = sequence_card(config.card, config.format_version, config.backbone)
    return {
        "path": str(path) if path is not None else None,
        "engine": engine,
        "device": device,
        "precision": precision,
        "backbone": config.backbone,
        "embed_dim": config.embed_dim,
        "input_size": config.input_size,
        "head": config.head,
        "head_kwargs": dict(config.head_kwargs),
        "threshold": settings.threshold,
        "temperature": config.temperature,
        "aggregation": settings.aggregation,
        "frame_stride": settings.frame_stride,
        "clip_len": settings.clip_len,
        "min_clip_len": settings.min_clip_len,
        "timeline_window": settings.timeline_window,
        "timeline_hop": settings.timeline_hop,
        "max_frames": settings.max_frames,
        "face_detector": settings.faces.detector,
        "faces": settings.faces.model_dump(mode="json"),
        "created": config.created,
        "package_version": config.package_version,
        "kind": "sequence",
        "card": card,
        "warnings": card["warnings"],
    }


def frame_model_info(
    config: FrameModelConfig,
    options: DetectOptions,
    *,
    path: Path | None,
    device: str,
    engine: str = "torch",
    precision: str | None = None,
    checks: list[dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """The ``model`` object of the detect JSON for a frame model (``engine``: "torch" or "onnx").

    ``precision`` / ``checks``: what the members run at (``inference.frame_precision``); by default, as
    before the first video: ``"32"`` when fp32 is forced, else ``"auto"``, each member undecided. The
    precision each video really ran at is in its ``info.precision``.
    """
    card = dict(config.card)
    if precision is None:
        precision = "32" if options.precision == "32" or engine == "onnx" else "auto"
    return {
        "path": str(path) if path is not None else None,
        "kind": "frame",
        "engine": engine,
        "device": device,
        "precision": precision,
        "precision_checks": checks if checks is not None else [None] * len(config.members),
        "family": card.get("family"),
        "architecture": config.network.arch,
        "members": len(config.members),
        "threshold": options.threshold if options.threshold is not None else config.threshold,
        "aggregation": config.recipe.aggregation,
        "recipe": config.recipe.model_dump(mode="json"),
        "card": card,
        "warnings": [str(w) for w in card.get("warnings", [])],
        "created": config.created,
        "package_version": config.package_version,
    }


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
