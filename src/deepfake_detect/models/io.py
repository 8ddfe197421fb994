"""Model directories: a trained extractor + sequence head that a person can inspect and share.

Layout (format_version 2; format 1 had no ``kind`` and ``card`` and still loads)::

    MODEL_DIR/
      config.json            ModelDirConfig: how to rebuild the modules and feed them
      extractor.safetensors  FeatureExtractor state dict
      head.safetensors       SequenceHead state dict

Loading rebuilds the modules from ``config.json`` and reads tensors with ``safetensors`` only: a model
directory is never unpickled, so opening one from an untrusted source cannot run code. Frame models
(``kind: frame``, imported published detectors) live in ``models.frame_dir``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from pydantic import ValidationError
from safetensors.torch import load_file
from torch import nn

from deepfake_detect.config import ClipConfig, FaceConfig
from deepfake_detect.infra.files import save_tensors, write_text
from deepfake_detect.models.backbones import WeightsError, load_state_checked, load_weights, read_state_dict
from deepfake_detect.models.dir_config import (
    CONFIG_FILE,
    EXTRACTOR_FILE,
    FORMAT_VERSION,
    HEAD_FILE,
    ModelDirConfig,
    ModelDirError,
    read_model_config,
)
from deepfake_detect.models.extractor import FeatureExtractor
from deepfake_detect.models.heads import SEQUENCE_HEADS, SequenceHead, create_head
from deepfake_detect.registry import UnknownOptionError

if TYPE_CHECKING:
    from deepfake_detect.models.frame_extractor import FrameFeatureExtractor

__all__ = [
    "CONFIG_FILE",
    "EXTRACTOR_FILE",
    "FORMAT_VERSION",
    "HEAD_FILE",
    "LoadedModel",
    "ModelDirConfig",
    "ModelDirError",
    "WeightsError",
    "load_model_dir",
    "load_weights",
    "read_model_config",
    "read_state_dict",
    "save_model_dir",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A model directory brought back to life (modules in eval mode on the requested device)."""

    extractor: FeatureExtractor | FrameFeatureExtractor
    head: SequenceHead
    config: ModelDirConfig


def save_model_dir(
    path: Path | str,
    extractor: FeatureExtractor | FrameFeatureExtractor,
    head: SequenceHead,
    *,
    head_name: str,
    head_kwargs: dict[str, Any],
    threshold: float,
    faces: FaceConfig,
    clips: ClipConfig,
    extra: dict[str, Any] | None = None,
    temperature: float = 1.0,
    card: dict[str, Any] | None = None,
) -> Path:
    """Write ``config.json`` + ``extractor.safetensors`` + ``head.safetensors`` into ``path``.

    ``temperature``: the head's calibration (see ``ModelDirConfig.temperature``); ``card``: how the model
    was made and what to expect of it (SPEC §9), stored as the config's ``card`` object.

    Each file is written atomically and ``config.json`` last, so a directory with a config is complete.
    Existing files of an earlier save are replaced. ``card`` (training data, warnings, ...) is stored as
    the config's ``card``. Returns the directory.
    """
    SEQUENCE_HEADS.get(head_name)  # unknown names fail before anything is written
    try:
        config = ModelDirConfig(
            backbone=extractor.backbone_name,
            embed_dim=extractor.embed_dim,
            input_size=extractor.input_size,
            mean=extractor.mean,
            std=extractor.std,
            head=head_name,
            head_kwargs=dict(head_kwargs),
            threshold=threshold,
            faces=faces.model_dump(mode="json"),
            clips=clips.model_dump(mode="json"),
            extra=dict(extra or {}),
            temperature=temperature,
            card=dict(card or {}),
            frame_extractor=getattr(extractor, "record", None),
        )
        text = json.dumps(config.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    except (ValidationError, TypeError, ValueError) as exc:
        raise ModelDirError(f"cannot describe this model in {CONFIG_FILE}: {exc}") from None
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_tensors(path / EXTRACTOR_FILE, extractor.state_dict())
    save_tensors(path / HEAD_FILE, head.state_dict())
    write_text(path / CONFIG_FILE, text)
    logger.info("saved model (%s + %s) to %s", config.backbone, config.head, path)
    return path


def _load_safetensors(module: nn.Module, file: Path) -> None:
    try:
        state = load_file(str(file), device="cpu")
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ModelDirError(f"{file} is not a readable safetensors file: {exc}") from None
    load_state_checked(module, state, source=file)


def _rebuild_extractor(config: ModelDirConfig) -> FeatureExtractor | FrameFeatureExtractor:
    if config.frame_extractor is not None:
        from deepfake_detect.models.frame_extractor import frame_extractor_from_record

        try:
            return frame_extractor_from_record(config.frame_extractor)
        except (KeyError, TypeError) as exc:
            raise ModelDirError(f"frame_extractor in {CONFIG_FILE} is incomplete: {exc!r}") from None
    extractor = FeatureExtractor(config.backbone, config.embed_dim, input_size=config.input_size)
    extractor.mean, extractor.std = config.mean, config.std
    return extractor


def load_model_dir(path: Path | str, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the extractor and head described by ``config.json`` and load their weights (strict)."""
    path = Path(path)
    config = read_model_config(path)
    extractor = _rebuild_extractor(config)
    try:
        head = create_head(config.head, **config.head_kwargs)
    except (TypeError, UnknownOptionError) as exc:
        where = path / CONFIG_FILE
        raise ModelDirError(f"{where}: head_kwargs do not fit head {config.head!r}: {exc}") from None
    _load_safetensors(extractor, path / EXTRACTOR_FILE)
    _load_safetensors(head, path / HEAD_FILE)
    extractor.to(device).eval()
    head.to(device).eval()
    return LoadedModel(extractor=extractor, head=head, config=config)
