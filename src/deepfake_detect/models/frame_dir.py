"""Frame-model directories (model format 2, ``kind: frame``; SPEC §9).

Layout::

    MODEL_DIR/
      config.json              FrameModelConfig: network, recipe, members, card
      member-0.safetensors     one state dict per ensemble member (the publisher's key names)
      ...

Weights are read with ``safetensors`` only; nothing in a model directory is unpickled.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors.torch import load_file, save_file

from deepfake_detect._version import __version__
from deepfake_detect.models.backbones import load_state_checked
from deepfake_detect.models.dir_config import CONFIG_FILE, ModelDirError, model_dir_kind, raw_config
from deepfake_detect.models.frame import FrameClassifier, create_frame_network
from deepfake_detect.models.io import atomic_write

__all__ = [
    "FRAME_FORMAT_VERSION",
    "CropRecipe",
    "DetectorRecipe",
    "FrameMember",
    "FrameModelConfig",
    "FrameRecipe",
    "LoadedFrameModel",
    "NetworkSpec",
    "load_frame_model_dir",
    "model_dir_kind",
    "read_frame_model_config",
    "save_frame_model_dir",
]

logger = logging.getLogger(__name__)

FRAME_FORMAT_VERSION: Literal[2] = 2


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DetectorRecipe(_Strict):
    """Face detection as the recipe does it: MTCNN on the frame resized by ``scale`` (PIL, as published)."""

    name: Literal["mtcnn"] = "mtcnn"
    scale: float = Field(default=0.5, gt=0.0, le=1.0)
    thresholds: tuple[float, float, float] = (0.7, 0.8, 0.8)
    min_face_size: int = Field(default=20, ge=1, description="MTCNN's min_face_size on the resized frame")
    note: str | None = Field(default=None, description="how this differs from the publisher's detector")


class CropRecipe(_Strict):
    """A crop rule of ``faces.crop_rules.CROP_RULES`` and its output size."""

    rule: str = "isotropic-pad"
    size: int = Field(default=380, ge=8)


class FrameRecipe(_Strict):
    """Everything between a video file and P(fake) for a frame model."""

    frames: int = Field(default=32, ge=1, description="frames evenly spaced over the video (linspace)")
    detector: DetectorRecipe = Field(default_factory=DetectorRecipe)
    crop: CropRecipe = Field(default_factory=CropRecipe)
    mean: tuple[float, float, float] | None = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] | None = (0.229, 0.224, 0.225)
    min_face_area_ratio: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="drop faces with a box area below this share of the largest",
    )
    max_crops: int | None = Field(default=None, ge=1, description="at most this many crops per video")
    aggregation: str = "confident"
    aggregation_kwargs: dict[str, Any] = Field(default_factory=dict)


class NetworkSpec(_Strict):
    builder: str
    arch: str
    num_outputs: int = Field(ge=1)
    output: str = "sigmoid"


class FrameMember(_Strict):
    file: str
    source: str
    sha256: str


class FrameModelConfig(_Strict):
    format_version: Literal[2] = FRAME_FORMAT_VERSION
    kind: Literal["frame"] = "frame"
    package_version: str = __version__
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    network: NetworkSpec
    members: list[FrameMember] = Field(min_length=1)
    recipe: FrameRecipe
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    card: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class LoadedFrameModel:
    """A frame-model directory brought back: one :class:`FrameClassifier` per member, in eval mode."""

    members: list[FrameClassifier]
    config: FrameModelConfig


def save_frame_model_dir(
    path: Path | str, config: FrameModelConfig, states: list[dict[str, torch.Tensor]]
) -> Path:
    """Write each member's tensors as safetensors, then ``config.json`` (atomically, last)."""
    if len(states) != len(config.members):
        raise ValueError(f"{len(states)} state dicts for {len(config.members)} members")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for member, state in zip(config.members, states, strict=True):
        tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        _write_tensors(path / member.file, tensors)
    text = json.dumps(config.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    atomic_write(path / CONFIG_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    logger.info("saved frame model (%s, %d members) to %s", config.network.arch, len(states), path)
    return path


def _write_tensors(target: Path, tensors: dict[str, torch.Tensor]) -> None:
    atomic_write(target, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))


def read_frame_model_config(path: Path | str) -> FrameModelConfig:
    path = Path(path)
    try:
        config = FrameModelConfig.model_validate(raw_config(path))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ModelDirError(f"{path / CONFIG_FILE} is invalid: {problems}") from None
    missing = [m.file for m in config.members if not (path / m.file).is_file()]
    if missing:
        raise ModelDirError(f"{path} is not a complete model directory: missing {', '.join(missing)}")
    return config


def load_frame_model_dir(path: Path | str, device: str | torch.device = "cpu") -> LoadedFrameModel:
    """Rebuild every member from ``config.json`` and load its safetensors (strict, keys named on mismatch)."""
    path = Path(path)
    config = read_frame_model_config(path)
    spec = config.network
    members = []
    for member in config.members:
        network = create_frame_network(spec.builder, spec.arch, spec.num_outputs)
        try:
            state = load_file(str(path / member.file), device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise ModelDirError(f"{path / member.file} is not a readable safetensors file: {exc}") from None
        load_state_checked(network, state, source=path / member.file)
        members.append(FrameClassifier(network, spec.output).to(device).eval())
    return LoadedFrameModel(members=members, config=config)
