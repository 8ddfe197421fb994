"""Per-frame feature extractor (SPEC §2): backbone + linear head to a 512-d embedding per frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepfake_detect.models.backbones import create_backbone


def prepare_frames(
    frames: torch.Tensor | np.ndarray,
    input_size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
) -> torch.Tensor:
    """uint8 RGB (N, H, W, 3) -> normalised float (N, 3, S, S): antialiased bilinear resize to
    ``input_size``, then ((x / 255) - mean) / std. The one implementation both engines use."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if frames.dtype != torch.uint8:
        raise TypeError(f"prepare expects uint8 frames, got {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        shape = tuple(frames.shape)
        raise ValueError(f"prepare expects frames shaped (N, H, W, 3) with N >= 1, got {shape}")
    x = frames.permute(0, 3, 1, 2).float()  # (N, 3, H, W), channels-last strides
    if x.shape[-2:] != (input_size, input_size):
        size = (input_size, input_size)
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    mean_t = torch.tensor(mean, device=x.device).view(1, 3, 1, 1) * 255.0
    std_t = torch.tensor(std, device=x.device).view(1, 3, 1, 1) * 255.0
    return (x - mean_t) / std_t  # (N, 3, S, S)


class FeatureExtractor(nn.Module):
    """Backbone features -> linear -> ``embed_dim`` per frame (the paper's 512-d frame vectors).

    ``prepare`` turns decoded uint8 RGB crops of any size into the normalised square input the
    backbone expects; ``forward`` embeds a batch of prepared images.
    """

    def __init__(
        self,
        backbone: str,
        embed_dim: int = 512,
        weights: Path | None = None,
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        if embed_dim < 1:
            raise ValueError(f"embed_dim must be positive, got {embed_dim}")
        self.backbone = create_backbone(backbone, weights=weights, input_size=input_size)
        self.head = nn.Linear(self.backbone.out_features, embed_dim)
        self.backbone_name = backbone
        self.embed_dim = embed_dim
        self.input_size = self.backbone.input_size
        self.mean: tuple[float, float, float] = self.backbone.mean
        self.std: tuple[float, float, float] = self.backbone.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)  # (B, F)
        out: torch.Tensor = self.head(feats)  # (B, D)
        return out

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Embed clips: (B, T, 3, S, S) prepared frames -> (B, T, D)."""
        if x.ndim != 5:
            raise ValueError(f"expected clips shaped (B, T, 3, S, S), got {tuple(x.shape)}")
        b, t = x.shape[:2]
        flat = self(x.flatten(0, 1))  # (B*T, D)
        return flat.unflatten(0, (b, t))  # (B, T, D)

    def prepare(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 RGB frames (N, H, W, 3) of any size -> normalised float (N, 3, S, S).

        Bilinear resize with antialiasing to ``input_size``, scale to [0, 1], subtract ``mean`` and
        divide by ``std``. The result stays on the input's device and keeps the channels-last memory
        layout of the input (``(N, H, W, 3)`` permuted), which channels_last models consume without a copy.
        """
        return prepare_frames(frames, self.input_size, self.mean, self.std)
