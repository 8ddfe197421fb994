"""Importers of published detectors (SPEC §9): one module per family, registered in :data:`IMPORTERS`.

``import_model(family, checkpoints, out)`` reads each checkpoint with ``torch.load(weights_only=True)``
(numpy scalars and dtypes allowlisted, nothing else), infers the architecture from tensor shapes, checks
every key and shape, and writes a format-2 frame-model directory (safetensors + config.json with the
recipe and a card holding each source file's sha256).
"""

from __future__ import annotations

from pathlib import Path

from deepfake_detect.models.importers.base import (
    IMPORTERS,
    CheckpointError,
    FamilyImporter,
    Imported,
    build_config,
)

__all__ = ["IMPORTERS", "CheckpointError", "FamilyImporter", "Imported", "import_model", "load_importers"]


def load_importers() -> None:
    """Import the family modules so that they register (idempotent; the registry's first lookup does it
    too: every module of this package is imported then)."""
    IMPORTERS.names()


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
