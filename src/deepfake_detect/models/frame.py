"""Frame classifiers (SPEC §9): one face crop in, P(fake) out, built exactly as their publishers built them.

:data:`FRAME_NETWORKS` maps a builder name to a factory ``(arch, num_outputs) -> nn.Module`` whose
``forward`` returns logits and whose ``features`` returns the pooled features. The module's attribute
names reproduce the publisher's state-dict keys, so imported weights load without renaming:

- ``timm-encoder-fc``: ``encoder`` (a timm model, its own classifier kept but unused) -> global average
  pool -> ``fc`` (the DFDC winner's layout).
- ``efficientnet-pytorch``: ``net``, an ``efficientnet_pytorch.EfficientNet`` with its ``_fc`` (SBI's layout).
- ``timm``: ``model``, a timm model whose classifier gives the logits (``timm-frame``).

:class:`FrameClassifier` turns logits into P(fake) with the publisher's rule (``sigmoid`` or
``softmax:K``, the probability of class K).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from deepfake_detect.registry import Registry

__all__ = [
    "FRAME_NETWORKS",
    "FrameClassifier",
    "FrameNetworkFactory",
    "create_frame_network",
    "shape_signature",
]

FrameNetworkFactory = Callable[[str, int], nn.Module]
FRAME_NETWORKS: Registry[FrameNetworkFactory] = Registry("frame network")


class EncoderFC(nn.Module):
    """timm encoder -> average pool over H, W -> Linear (``encoder.*``, ``fc.*``)."""

    def __init__(self, arch: str, num_outputs: int) -> None:
        super().__init__()
        import timm

        encoder: Any = timm.create_model(arch, pretrained=False)
        self.encoder = encoder
        self.fc = nn.Linear(int(encoder.num_features), num_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.forward_features(x).mean(dim=(2, 3))  # (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))  # (B, num_outputs)


class EfficientNetPytorch(nn.Module):
    """``efficientnet_pytorch.EfficientNet`` built from its name (its default image size), as ``net``."""

    def __init__(self, arch: str, num_outputs: int) -> None:
        super().__init__()
        from efficientnet_pytorch import EfficientNet

        self.net: Any = EfficientNet.from_name(arch, num_classes=num_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))  # (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, num_outputs)


class TimmClassifier(nn.Module):
    """A timm model with ``num_outputs`` classes, as ``model``."""

    def __init__(self, arch: str, num_outputs: int) -> None:
        super().__init__()
        import timm

        self.model: Any = timm.create_model(arch, pretrained=False, num_classes=num_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)  # (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, num_outputs)


FRAME_NETWORKS.register("timm-encoder-fc")(EncoderFC)
FRAME_NETWORKS.register("efficientnet-pytorch")(EfficientNetPytorch)
FRAME_NETWORKS.register("timm")(TimmClassifier)


def create_frame_network(builder: str, arch: str, num_outputs: int, *, meta: bool = False) -> nn.Module:
    """Build a network of :data:`FRAME_NETWORKS` (on the meta device when ``meta``: shapes only)."""
    factory = FRAME_NETWORKS.get(builder)
    if meta:
        with torch.device("meta"):
            return factory(arch, num_outputs)
    return factory(arch, num_outputs)


def shape_signature(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of a state dict (what variant inference compares)."""
    return {k: tuple(v.shape) for k, v in state.items()}


class FrameClassifier(nn.Module):
    """A frame network plus its publisher's output rule: ``forward`` gives P(fake) per crop, (B,)."""

    def __init__(self, network: nn.Module, output: str) -> None:
        super().__init__()
        if output != "sigmoid" and not (output.startswith("softmax:") and output[8:].isdigit()):
            raise ValueError(f"unknown output rule {output!r}: use 'sigmoid' or 'softmax:K'")
        self.network = network
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.network(x)  # (B, K)
        if self.output == "sigmoid":
            return torch.sigmoid(logits[:, 0])
        return logits.softmax(dim=1)[:, int(self.output[8:])]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.network.features(x)  # type: ignore[operator]
        return features
