"""Frame backbones (SPEC §2 'Feature extractor'): image (B, 3, S, S) -> features (B, F).

Every backbone is registered in :data:`BACKBONES`; ``create_backbone`` is the only way the rest of the
code builds one. Backbones start from random weights: nothing is ever downloaded (timm is called with
``pretrained=False``, torchvision with ``weights=None``). Pretrained weights come only from a local file
the user names (``weights=PATH``): a ``.safetensors`` file or a PyTorch state dict read with
``torch.load(weights_only=True)`` (no unpickling of arbitrary objects).
"""

from __future__ import annotations

import difflib
import functools
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepfake_detect.registry import Registry, UnknownNameError

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_KEY_PREFIXES = ("module.", "model.", "body.")  # wrappers (DDP, Lightning, Backbone) stripped from files


class WeightsError(ValueError):
    """A weights file that cannot be loaded into a module; the message names the file and the keys."""


class Backbone(nn.Module):
    """A feature network with the facts needed to feed it.

    Attributes:
        out_features: width F of the feature vector.
        input_size: side S of the square input it is run at.
        mean, std: per-channel normalisation of [0, 1] RGB input.
        min_input_size: the smallest side the network accepts.
        classifier_keys: state-dict key prefixes of the removed classification layer; dropped when a
            pretrained file that still holds them is loaded.
    """

    def __init__(
        self,
        body: nn.Module,
        *,
        out_features: int,
        input_size: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        min_input_size: int = 16,
        classifier_keys: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.body = body
        self.out_features = out_features
        self.input_size = input_size
        self.mean = mean
        self.std = std
        self.min_input_size = min_input_size
        self.classifier_keys = classifier_keys

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats: torch.Tensor = self.body(x)  # (B, F)
        return feats


BackboneFactory = Callable[[int | None], Backbone]
# Every module of models/extra_backbones/ is imported on the first lookup (a new backbone: one file).
BACKBONES: Registry[BackboneFactory] = Registry("backbone", package="deepfake_detect.models.extra_backbones")


def _triple(values: object) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)  # type: ignore[attr-defined]
    return (a, b, c)


@BACKBONES.register("cnn4")
def cnn4(input_size: int | None = None, channels: tuple[int, ...] = (32, 64, 128, 256)) -> Backbone:
    """The paper's 'simple 4-layer CNN': 4 x (conv3x3-BN-ReLU-maxpool2), global average pool."""
    layers: list[nn.Module] = []
    in_ch = 3
    for out_ch in channels:
        layers += [
            nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
        in_ch = out_ch
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]  # (B, C, h, w) -> (B, C)
    return Backbone(
        nn.Sequential(*layers),
        out_features=in_ch,
        input_size=input_size or 128,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


@BACKBONES.register("resnet50")
def resnet50(input_size: int | None = None) -> Backbone:
    """torchvision ResNet-50 without its ``fc`` layer: 2048 pooled features, ImageNet normalisation."""
    import torchvision

    body = torchvision.models.resnet50(weights=None)
    body.fc = nn.Identity()
    return Backbone(
        body,
        out_features=2048,
        input_size=input_size or 224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        classifier_keys=("fc.",),
    )


def _timm_backbone(model_name: str, input_size: int | None = None, min_input_size: int = 16) -> Backbone:
    """Any timm model with its classifier removed; size and normalisation from its pretrained_cfg."""
    import timm
    import timm.data

    body: Any = timm.create_model(model_name, pretrained=False, num_classes=0)
    cfg = timm.data.resolve_model_data_config(body)
    classifier = body.pretrained_cfg.get("classifier") or ()
    names = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    return Backbone(
        body,
        out_features=int(body.num_features),
        input_size=input_size or int(cfg["input_size"][-1]),
        mean=_triple(cfg["mean"]),
        std=_triple(cfg["std"]),
        min_input_size=min_input_size,
        classifier_keys=tuple(f"{n}." for n in names),
    )


@BACKBONES.register("inception_resnet_v2")
def inception_resnet_v2(input_size: int | None = None) -> Backbone:
    """timm InceptionResNetV2 (the paper's pretrained baseline): 1536 features, input 299, mean/std 0.5.

    The stem and reduction blocks need at least 75 x 75 pixels.
    """
    return _timm_backbone("inception_resnet_v2", input_size, min_input_size=75)


@BACKBONES.register_prefix("timm:")
def _resolve_timm(model_name: str) -> BackboneFactory:
    import timm

    if not timm.is_model(model_name):
        close = difflib.get_close_matches(model_name, timm.list_models(), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
        raise UnknownNameError(f"timm has no model {model_name!r}.{hint}")
    return functools.partial(_timm_backbone, model_name)


def create_backbone(name: str, *, weights: Path | None = None, input_size: int | None = None) -> Backbone:
    """Build a registered backbone, optionally at another input size or with weights from a local file."""
    backbone = BACKBONES.get(name)(input_size)
    if backbone.input_size < backbone.min_input_size:
        raise ValueError(
            f"backbone {name!r} needs input_size >= {backbone.min_input_size}, got {backbone.input_size}"
        )
    if weights is not None:
        state = read_state_dict(weights)
        state = _strip_prefixes(state)
        if backbone.classifier_keys:  # pretrained files usually still hold the classification layer
            state = {k: v for k, v in state.items() if not k.startswith(backbone.classifier_keys)}
        load_state_checked(backbone.body, state, source=Path(weights))
        logger.info("loaded %s weights from %s", name, weights)
    return backbone


# --- weight files ---------------------------------------------------------------------------------


def read_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """Read tensors from a ``.safetensors`` file or a ``torch.save``-d state dict (weights_only=True).

    A checkpoint dict that nests the weights under ``state_dict`` or ``model`` is accepted too.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types for corrupt headers
            raise WeightsError(f"{path} is not a readable safetensors file: {exc}") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise WeightsError(
            f"{path} could not be read as a state dict with torch.load(weights_only=True): {exc}"
        ) from None
    return _find_tensors(obj, path)


def _find_tensors(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {str(k): v for k, v in obj.items()}
    raise WeightsError(f"{path} does not hold a state dict (a mapping of names to tensors)")


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes (``module.``, ``model.``, ``body.``) shared by every key."""
    for prefix in _KEY_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _few(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f" ... ({len(keys)} in all)" if len(keys) > n else "")


def load_state_checked(module: nn.Module, state: Mapping[str, torch.Tensor], *, source: Path) -> None:
    """``module.load_state_dict(state, strict=True)`` with an error that lists mismatched keys."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_few(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches (file vs model): {_few(shapes)}")
    if problems:
        raise WeightsError(f"{source} does not fit {type(module).__name__}: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)


def load_weights(module: nn.Module, path: Path | str) -> None:
    """Load a local weights file (safetensors or a weights-only state dict) into ``module``, strictly."""
    load_state_checked(module, read_state_dict(path), source=Path(path))
