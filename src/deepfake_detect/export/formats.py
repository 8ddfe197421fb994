"""Export formats: name -> exporter (``deepfake-detect export --format NAME``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from deepfake_detect.registry import Registry

Exporter = Callable[..., Path]
"""``exporter(model_dir: Path, out_dir: Path, **options) -> out_dir``."""

EXPORT_FORMATS: Registry[Exporter] = Registry("export format")
