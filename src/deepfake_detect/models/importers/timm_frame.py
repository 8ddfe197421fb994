"""``timm-frame``: any timm architecture with its classifier as the head, and a recipe the user writes.

The checkpoint is a timm model's state dict (optionally inside ``state_dict`` or ``model``, keys optionally
prefixed ``module.``). The recipe file (YAML) names the architecture and everything else::

    arch: efficientnet_b0          # a timm model name
    num_outputs: 1                 # the classifier's outputs
    output: sigmoid                # or softmax:K (P(fake) = softmax[:, K])
    recipe: {frames: 32, crop: {rule: margin-resize, size: 224}, mean: [0.485, 0.456, 0.406], ...}
    card: {licence: ..., training_data: ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from deepfake_detect.models.frame_dir import FrameRecipe, NetworkSpec
from deepfake_detect.models.importers.base import (
    IMPORTERS,
    FamilyImporter,
    Imported,
    infer_variant,
    read_container,
)
from deepfake_detect.models.safe_load import CheckpointError

BUILDER = "timm"


def _read_recipe(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the recipe file {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("arch"), str):
        raise ValueError(f"{path} must be a YAML mapping with at least 'arch' (a timm model name)")
    return data


def _load(path: Path) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model"):
        try:
            return read_container(path, key, "module.", optional_prefix=True)
        except CheckpointError as exc:
            if "entry holding the weights" not in str(exc):
                raise
    raise CheckpointError(f"{path} holds no state dict (looked at the file, 'state_dict' and 'model')")


def run(checkpoints: list[Path], recipe_file: Path | None) -> Imported:
    if recipe_file is None:
        raise ValueError("timm-frame needs --recipe FILE.yaml (arch, num_outputs, output, recipe, card)")
    spec = _read_recipe(recipe_file)
    num_outputs = int(spec.get("num_outputs", 1))
    states = [{f"model.{k}": v for k, v in _load(path).items()} for path in checkpoints]
    for state, path in zip(states, checkpoints, strict=True):
        infer_variant(state, BUILDER, [spec["arch"]], num_outputs, source=path)
    network = NetworkSpec(
        builder=BUILDER, arch=spec["arch"], num_outputs=num_outputs, output=str(spec.get("output", "sigmoid"))
    )
    recipe = FrameRecipe.model_validate(spec.get("recipe", {}))
    card = {"recipe_file": recipe_file.name, **dict(spec.get("card", {}))}
    return Imported(network=network, states=states, sources=list(checkpoints), recipe=recipe, card=card)


TIMM_FRAME = FamilyImporter(
    name="timm-frame",
    summary="any timm classifier from a state dict, with a recipe YAML you write",
    licence="as its publisher states it (put it in the recipe's card)",
    suits="other published frame classifiers",
    run=run,
)
IMPORTERS.register(TIMM_FRAME.name)(TIMM_FRAME)
