"""``sbi``: Self-Blended Images (github.com/mapooon/SelfBlendedImages; research use only).

A ``.tar`` torch pickle ``{"model": state_dict, "optimizer", "epoch"}`` whose keys ``net.*`` are
efficientnet_pytorch's EfficientNet-B4 with ``_fc`` Linear(1792, 2); P(fake) = softmax[:, 1]. The
variant is read from the tensor shapes. The authors detect faces with RetinaFace, whose weights cannot be
had offline: this recipe uses MTCNN instead, and the card says so.
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

BUILDER = "efficientnet-pytorch"
VARIANTS = [f"efficientnet-b{i}" for i in (4, 0, 1, 2, 3, 5, 6, 7)]
DETECTOR_NOTE = (
    "the authors detect faces with RetinaFace (resnet50_2020-07-20), whose weights cannot be had offline; "
    "this recipe uses facenet-pytorch MTCNN, whose boxes differ, so results differ from the published ones"
)

RECIPE = FrameRecipe(
    frames=32,
    detector=DetectorRecipe(scale=0.5, thresholds=(0.6, 0.7, 0.7), min_face_size=20, note=DETECTOR_NOTE),
    crop=CropRecipe(rule="margin-resize", size=380),
    mean=None,
    std=None,
    min_face_area_ratio=0.5,
    aggregation="max-face-mean-frame",
)

CARD = {
    "source": "https://github.com/mapooon/SelfBlendedImages",
    "licence": (
        "research use only; commercial use needs a licence agreement with the authors (the repository's "
        "README and LICENSE)"
    ),
    "training_data": "FaceForensics++ real videos with self-blended synthetic fakes (no real deepfakes)",
    "intended_use": "research on detecting face manipulations unseen in training (cross-dataset)",
    "limits": [DETECTOR_NOTE, "frame by frame: no temporal evidence"],
}


def run(checkpoints: list[Path], recipe_file: Path | None) -> Imported:
    if recipe_file is not None:
        raise ValueError("sbi uses its published recipe; --recipe is for timm-frame")
    states = [read_container(path, "model", "net.", keep_prefix=True) for path in checkpoints]
    arch = ensemble_variant(states, list(checkpoints), BUILDER, VARIANTS, 2)
    network = NetworkSpec(builder=BUILDER, arch=arch, num_outputs=2, output="softmax:1")
    return Imported(network=network, states=states, sources=list(checkpoints), recipe=RECIPE, card=dict(CARD))


SBI = FamilyImporter(
    name="sbi",
    summary="Self-Blended Images: EfficientNet-B4 (efficientnet_pytorch), softmax, max over faces",
    licence=str(CARD["licence"]),
    suits="manipulations unseen in training (cross-dataset generalisation); research use only",
    run=run,
)
IMPORTERS.register(SBI.name)(SBI)
