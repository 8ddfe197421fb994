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
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from deepfake_detect.infra.files import save_tensors, write_text
from deepfake_detect.models.backbones import load_state_checked
from deepfake_detect.models.dir_config import CONFIG_FILE, ModelDirError, model_dir_kind
from deepfake_detect.models.frame import FrameClassifier, create_frame_network
from deepfake_detect.models.frame_config import (
    FRAME_FORMAT_VERSION,
    CropRecipe,
    DetectorRecipe,
    FrameMember,
    FrameModelConfig,
    FrameRecipe,
    NetworkSpec,
    read_frame_model_config,
)

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


@dataclass(frozen=True)
class LoadedFrameModel:
    """A frame-model directory brought back: one :class:`FrameClassifier` per member, in eval mode (or
    one onnxruntime graph per member, ``export.onnx_frame.load_onnx_frame_model``): P(fake) (N,) of
    network inputs (N, 3, S, S)."""

    members: list[nn.Module]
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
        save_tensors(path / member.file, state)
    text = json.dumps(config.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    write_text(path / CONFIG_FILE, text)
    logger.info("saved frame model (%s, %d members) to %s", config.network.arch, len(states), path)
    return path


def load_frame_model_dir(path: Path | str, device: str | torch.device = "cpu") -> LoadedFrameModel:
    """Rebuild every member from ``config.json`` and load its safetensors (strict, keys named on mismatch)."""
    path = Path(path)
    config = read_frame_model_config(path)
    spec = config.network
    members: list[nn.Module] = []
    for member in config.members:
        network = create_frame_network(spec.builder, spec.arch, spec.num_outputs)
        try:
            state = load_file(str(path / member.file), device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise ModelDirError(f"{path / member.file} is not a readable safetensors file: {exc}") from None
        load_state_checked(network, state, source=path / member.file)
        members.append(FrameClassifier(network, spec.output).to(device).eval())
    return LoadedFrameModel(members=members, config=config)
