"""``dfdc-winner``: the DFDC first-place ensemble (github.com/selimsef/dfdc_deepfake_challenge, MIT).

A checkpoint is a torch pickle ``{"epoch", "state_dict", "bce_best"}`` (``bce_best`` a numpy float) whose
``state_dict`` keys are ``module.encoder.*`` (a timm ``tf_efficientnet_b7`` with its unused 1000-way
classifier) and ``module.fc.*`` (Linear(2560, 1)); P(fake) = sigmoid. The variant (B0-B7) is read from the
tensor shapes. Several checkpoints form one ensemble (the winning entry had seven).
"""

from __future__ import annotations

from pathlib import Path

from deepfake_detect.models.frame_dir import CropRecipe, DetectorRecipe, FrameRecipe, NetworkSpec
from deepfake_detect.models.importers.base import (
    IMPORTERS,
    FamilyImporter,
    Imported,
    ensemble_variant,
    read_container,
)

BUILDER = "timm-encoder-fc"
VARIANTS = [f"tf_efficientnet_b{i}" for i in (7, 6, 5, 4, 3, 2, 1, 0)]

RECIPE = FrameRecipe(
    frames=32,
    detector=DetectorRecipe(scale=0.5, thresholds=(0.7, 0.8, 0.8), min_face_size=20),
    crop=CropRecipe(rule="isotropic-pad", size=380),
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    max_crops=127,  # the published batch holds frames*4 crops and fills at most all but one of them
    aggregation="confident",
    aggregation_kwargs={"t": 0.8},
)

CARD = {
    "source": "https://github.com/selimsef/dfdc_deepfake_challenge",
    "licence": "MIT (the repository's LICENSE, covering the code and the released weights)",
    "training_data": "DFDC training set (Deepfake Detection Challenge, about 100k videos)",
    "intended_use": "deepfake detection in videos like DFDC's: one or a few frontal faces, face-swap fakes",
    "limits": [
        "trained on DFDC: accuracy drops on other datasets and on manipulations unlike DFDC's",
        "frame by frame: no temporal evidence",
    ],
}


def run(checkpoints: list[Path], recipe_file: Path | None) -> Imported:
    if recipe_file is not None:
        raise ValueError("dfdc-winner uses its published recipe; --recipe is for timm-frame")
    states = [read_container(path, "state_dict", "module.", optional_prefix=True) for path in checkpoints]
    arch = ensemble_variant(states, list(checkpoints), BUILDER, VARIANTS, 1)
    network = NetworkSpec(builder=BUILDER, arch=arch, num_outputs=1, output="sigmoid")
    return Imported(network=network, states=states, sources=list(checkpoints), recipe=RECIPE, card=dict(CARD))


DFDC_WINNER = FamilyImporter(
    name="dfdc-winner",
    summary="DFDC 1st place: EfficientNet-B7 ensemble (7 checkpoints), sigmoid, confident strategy",
    licence=str(CARD["licence"]),
    suits="DFDC-like footage (face swaps of one or a few frontal faces)",
    run=run,
)
IMPORTERS.register(DFDC_WINNER.name)(DFDC_WINNER)
