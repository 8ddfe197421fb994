"""A model directory's ``config.json`` (:class:`ModelDirConfig`), read without torch.

``models.io`` loads the weights; this module only validates the configuration, so that a process that
hands the work to workers (``detect``'s parent) can describe a model without importing torch.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deepfake_detect._version import __version__
from deepfake_detect.config import ClipConfig, FaceConfig

__all__ = [
    "CONFIG_FILE",
    "EXTRACTOR_FILE",
    "FORMAT_VERSION",
    "HEAD_FILE",
    "ONNX_SECTION",
    "ModelDirConfig",
    "ModelDirError",
    "model_dir_kind",
    "raw_config",
    "read_model_config",
]

FORMAT_VERSION = 2
CONFIG_FILE = "config.json"
ONNX_SECTION = "onnx"  # config.json -> extra["onnx"]: the graphs of an ONNX export (export.onnx_export)
EXTRACTOR_FILE = "extractor.safetensors"
HEAD_FILE = "head.safetensors"


class ModelDirError(ValueError):
    """A model directory that is missing, incomplete, or whose config cannot be used."""


class ModelDirConfig(BaseModel):
    """Everything needed to rebuild and feed a saved model (``config.json``)."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = Field(default=FORMAT_VERSION, ge=1)
    kind: Literal["sequence"] = "sequence"
    package_version: str = __version__
    backbone: str
    embed_dim: int = Field(ge=1)
    input_size: int = Field(ge=1)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    head: str
    head_kwargs: dict[str, Any] = Field(default_factory=dict)
    threshold: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="probability at or above which a video is fake"
    )
    temperature: float = Field(
        default=1.0,
        gt=0.0,
        description="temperature scaling: the reported probability is sigmoid(logit / temperature); "
        "fitted on validation clips, 1 = uncalibrated; the threshold applies to the calibrated probability",
    )
    faces: dict[str, Any] = Field(description="the FaceConfig the training clips were made with")
    clips: dict[str, Any] = Field(description="the ClipConfig the training clips were made with")
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    extra: dict[str, Any] = Field(default_factory=dict)
    card: dict[str, Any] = Field(
        default_factory=dict, description="where the model came from (training data, warnings, ...)"
    )
    frame_extractor: dict[str, Any] | None = Field(
        default=None, description="the extractor is a frozen imported frame model (models.frame_extractor)"
    )

    def face_config(self) -> FaceConfig:
        return FaceConfig.model_validate(self.faces)

    def clip_config(self) -> ClipConfig:
        return ClipConfig.model_validate(self.clips)


def _declares_frame_kind(config_file: Path) -> bool:
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and raw.get("kind") == "frame"


def read_model_config(path: Path | str, *, weights: bool = True) -> ModelDirConfig:
    """Read and validate ``config.json`` of a model directory (checks that all three files exist;
    ``weights=False``: only ``config.json``, e.g. for an exported folder whose engine checks its files)."""
    path = Path(path)
    if not path.is_dir():
        raise ModelDirError(f"model directory not found: {path}")
    if _declares_frame_kind(path / CONFIG_FILE):
        raise ModelDirError(f"{path} holds a frame model (an imported detector); this needs a sequence model")
    needed = (CONFIG_FILE, EXTRACTOR_FILE, HEAD_FILE) if weights else (CONFIG_FILE,)
    missing = [name for name in needed if not (path / name).is_file()]
    if missing:
        raise ModelDirError(f"{path} is not a complete model directory: missing {', '.join(missing)}")
    raw = raw_config(path)
    version = raw.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ModelDirError(
            f"{path} uses model format {version}; this deepfake-detect ({__version__}) reads up to "
            f"{FORMAT_VERSION}: upgrade the package"
        )
    try:
        return ModelDirConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ModelDirError(f"{path / CONFIG_FILE} is invalid: {problems}") from None


def raw_config(path: Path) -> dict[str, Any]:
    """The JSON object in ``path/config.json`` (ModelDirError if absent or not an object)."""
    if not (path / CONFIG_FILE).is_file():
        raise ModelDirError(f"{path} is not a model directory: no {CONFIG_FILE}")
    try:
        raw = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelDirError(f"{path / CONFIG_FILE} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ModelDirError(f"{path / CONFIG_FILE} must hold a JSON object")
    return raw


def model_dir_kind(path: Path | str) -> str:
    """``"frame"`` or ``"sequence"`` (format-1 directories are sequence models; so is a directory without
    ``config.json``, whose loader then says what is missing)."""
    path = Path(path)
    if not path.is_dir():
        raise ModelDirError(f"model directory not found: {path}")
    if not (path / CONFIG_FILE).is_file():
        return "sequence"
    kind = raw_config(path).get("kind", "sequence")
    if kind not in ("frame", "sequence"):
        raise ModelDirError(f"{path / CONFIG_FILE}: unknown model kind {kind!r} (expected frame or sequence)")
    return str(kind)
