"""Importers of published detectors (SPEC §9): one module per family, registered in :data:`IMPORTERS`.

``import_model(family, checkpoints, out)`` reads each checkpoint with ``torch.load(weights_only=True)``
(numpy scalars and dtypes allowlisted, nothing else), infers the architecture from tensor shapes, checks
every key and shape, and writes a format-2 frame-model directory (safetensors + config.json with the
recipe and a card holding each source file's sha256).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from deepfake_detect.models.importers.base import (
    IMPORTERS,
    CheckpointError,
    FamilyImporter,
    Imported,
    build_config,
)

__all__ = ["IMPORTERS", "CheckpointError", "FamilyImporter", "Imported", "import_model", "load_importers"]

_FAMILY_MODULES = ("dfdc_winner", "sbi", "timm_frame")


def load_importers() -> None:
    """Import the family modules so that they register (idempotent)."""
    for name in _FAMILY_MODULES:
        importlib.import_module(f"deepfake_detect.models.importers.{name}")


def import_model(
    family: str, checkpoints: list[Path | str], out: Path | str, *, recipe: Path | str | None = None
) -> Path:
    """Import ``checkpoints`` of ``family`` into the model directory ``out``; returns ``out``."""
    from deepfake_detect.models.frame_dir import save_frame_model_dir

    load_importers()
    importer = IMPORTERS.get(family)
    if not checkpoints:
        raise ValueError("give at least one checkpoint file")
    imported = importer.run([Path(c) for c in checkpoints], Path(recipe) if recipe is not None else None)
    config, states = build_config(imported, family=family)
    return save_frame_model_dir(out, config, states)
