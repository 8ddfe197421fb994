"""An imported frame model as a frozen per-frame extractor for the sequence heads (SPEC §9, issue 10).

:class:`FrameFeatureExtractor` wraps one member's network and gives its pooled features (the input of its
classifier, e.g. 2560-d for EfficientNet-B7) for the clip store's crops, so that ``embed`` and
``train-head`` can put the paper's LSTM on top of a published frame classifier.

Crops: the clip store holds square face crops (the store's detector, ``faces.margin`` of context,
``faces.crop_size`` pixels), not the recipe's own crops. ``prepare`` applies the part of the recipe's
crop rule that still applies to such a crop, then the recipe's normalisation:

- ``isotropic-pad``: longer side to ``size`` (INTER_AREA down, INTER_CUBIC up) and centred paste; a square
  crop fills the whole square, so no zero bars. The h // 3, w // 3 padding around the box cannot be
  re-made: the context is the store's margin.
- ``margin-resize``: plain bilinear resize to ``size`` x ``size``; the context is the store's margin, not
  w / 8, h / 8.

Then RGB / 255 and the recipe's mean/std (none when the recipe has none).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from deepfake_detect.faces.crop_rules import isotropic_resize, paste_centred
from deepfake_detect.models.backbones import load_state_checked
from deepfake_detect.models.frame import create_frame_network
from deepfake_detect.models.frame_dir import read_frame_model_config
from deepfake_detect.models.io import ModelDirError

__all__ = [
    "STORED_CROP_RULES",
    "FrameFeatureExtractor",
    "frame_extractor_from_record",
    "load_frame_extractor",
]

StoredCropRule = Callable[[np.ndarray, int], np.ndarray]


def _isotropic(crop: np.ndarray, size: int) -> np.ndarray:
    return paste_centred(isotropic_resize(crop, size), size)


def _plain(crop: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(np.ascontiguousarray(crop), (size, size))


STORED_CROP_RULES: dict[str, StoredCropRule] = {"isotropic-pad": _isotropic, "margin-resize": _plain}
"""Recipe crop rule -> what of it applies to an already cut square crop."""

DIFFERENCES = (
    "crops are the clip store's square face crops (its face detector, faces.margin context, "
    "faces.crop_size pixels) resized by the recipe's rule to its input size, not crops cut from the "
    "full frame with the recipe's own detector, padding and sampled frames"
)


class FrameFeatureExtractor(nn.Module):
    """Frozen pooled features of one frame-model member: uint8 crops -> (N, embed_dim).

    ``record`` (JSON) is everything needed to rebuild it (network spec, crop rule, size, mean, std,
    source); a sequence model directory stores it as ``frame_extractor``.
    """

    def __init__(self, network: nn.Module, record: dict[str, Any]) -> None:
        super().__init__()
        rule = str(record["crop_rule"])
        if rule not in STORED_CROP_RULES:
            known = ", ".join(sorted(STORED_CROP_RULES))
            raise ModelDirError(f"crop rule {rule!r} cannot be applied to stored crops (known: {known})")
        self.network = network.eval().requires_grad_(False)
        self.record = dict(record)
        self.crop_rule = STORED_CROP_RULES[rule]
        self.input_size = int(record["size"])
        self.normalise = record.get("mean") is not None and record.get("std") is not None
        self.mean: tuple[float, float, float] = tuple(record["mean"]) if self.normalise else (0.0, 0.0, 0.0)
        self.std: tuple[float, float, float] = tuple(record["std"]) if self.normalise else (1.0, 1.0, 1.0)
        self.backbone_name = f"frame:{record['network']['arch']}"
        with torch.no_grad():
            probe = torch.zeros(1, 3, 64, 64)
            self.embed_dim = int(self.network.features(probe).shape[1])  # type: ignore[operator]

    def train(self, mode: bool = True) -> FrameFeatureExtractor:
        """The network stays in eval mode (frozen batch-norm statistics, no dropout)."""
        super().train(mode)
        self.network.eval()
        return self

    def prepare(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 RGB crops (N, H, W, 3) -> float (N, 3, S, S): the recipe's rule, / 255, mean/std."""
        device = frames.device if isinstance(frames, torch.Tensor) else torch.device("cpu")
        array = frames.cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3 or len(array) == 0:
            raise ValueError(
                f"prepare expects uint8 frames shaped (N, H, W, 3), got {array.dtype} {array.shape}"
            )
        crops = np.stack([self.crop_rule(crop, self.input_size) for crop in array])  # (N, S, S, 3)
        x = torch.from_numpy(crops).to(device).permute(0, 3, 1, 2).float() / 255.0  # (N, 3, S, S)
        if self.normalise:
            x = (x - torch.tensor(self.mean, device=device).view(1, 3, 1, 1)) / torch.tensor(
                self.std, device=device
            ).view(1, 3, 1, 1)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.network.features(x)  # type: ignore[operator]
        return features  # (B, embed_dim)

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, S, S) prepared frames -> (B, T, D)."""
        b, t = x.shape[:2]
        return self(x.flatten(0, 1)).unflatten(0, (b, t))


def frame_extractor_from_record(record: dict[str, Any]) -> FrameFeatureExtractor:
    """An extractor with random weights shaped as ``record`` says (load its state dict next)."""
    spec = record["network"]
    network = create_frame_network(spec["builder"], spec["arch"], int(spec["num_outputs"]))
    return FrameFeatureExtractor(network, record)


def load_frame_extractor(path: Path | str, member: int = 0) -> FrameFeatureExtractor:
    """Member ``member`` of the frame-model directory ``path`` as a frozen extractor (eval mode, CPU)."""
    path = Path(path)
    config = read_frame_model_config(path)
    if not 0 <= member < len(config.members):
        raise ModelDirError(
            f"{path} has {len(config.members)} member(s): --member must be 0..{len(config.members) - 1}"
        )
    chosen = config.members[member]
    recipe = config.recipe
    record = {
        "network": config.network.model_dump(mode="json"),
        "crop_rule": recipe.crop.rule,
        "size": recipe.crop.size,
        "mean": list(recipe.mean) if recipe.mean is not None else None,
        "std": list(recipe.std) if recipe.std is not None else None,
        "source": {
            "family": config.card.get("family"),
            "member": member,
            "members": len(config.members),
            "sha256": chosen.sha256,
        },
        "differences": DIFFERENCES,
    }
    extractor = frame_extractor_from_record(record)
    try:
        state = load_file(str(path / chosen.file), device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise ModelDirError(f"{path / chosen.file} is not a readable safetensors file: {exc}") from None
    load_state_checked(extractor.network, state, source=path / chosen.file)
    return extractor.eval()
