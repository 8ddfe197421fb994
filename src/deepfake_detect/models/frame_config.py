"""A frame model's ``config.json`` (:class:`FrameModelConfig`: network, members, recipe), read without torch.

``models.frame_dir`` writes frame-model directories and loads their weights.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deepfake_detect._version import __version__
from deepfake_detect.models.dir_config import CONFIG_FILE, ModelDirError, raw_config

__all__ = [
    "FRAME_FORMAT_VERSION",
    "CropRecipe",
    "DetectorRecipe",
    "FrameMember",
    "FrameModelConfig",
    "FrameRecipe",
    "NetworkSpec",
    "read_frame_model_config",
]

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
    extra: dict[str, Any] = Field(
        default_factory=dict, description="facts for other runtimes: extra['onnx'] describes an ONNX export"
    )


def read_frame_model_config(path: Path | str, *, weights: bool = True) -> FrameModelConfig:
    """The directory's checked ``config.json``; with ``weights`` its members' safetensors must be there
    (an ONNX export written to another folder has only the graphs: ``weights=False``)."""
    path = Path(path)
    try:
        config = FrameModelConfig.model_validate(raw_config(path))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ModelDirError(f"{path / CONFIG_FILE} is invalid: {problems}") from None
    missing = [m.file for m in config.members if not (path / m.file).is_file()]
    if weights and missing:
        raise ModelDirError(f"{path} is not a complete model directory: missing {', '.join(missing)}")
    return config
