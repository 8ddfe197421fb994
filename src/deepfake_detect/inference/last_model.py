"""Where the model that ``deepfake-detect demo`` trained last lives (so ``detect`` works without ``--model``).

The demo writes the absolute path of its model folder into a small pointer file in the user's cache
folder: ``$XDG_CACHE_HOME/deepfake-detect/last-model`` (``~/.cache/...`` when the variable is unset).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from deepfake_detect.infra.files import write_text

logger = logging.getLogger(__name__)

POINTER_NAME = "last-model"
MODEL_CONFIG_FILE = "config.json"


def last_model_pointer() -> Path:
    """``$XDG_CACHE_HOME/deepfake-detect/last-model`` (``~/.cache/...`` when the variable is unset)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "deepfake-detect" / POINTER_NAME


def record_last_model(model_dir: Path | str) -> Path:
    """Write ``model_dir`` (made absolute) into the pointer file, atomically; returns the pointer's path."""
    return write_text(last_model_pointer(), str(Path(model_dir).resolve()) + "\n")


def last_model_path() -> Path | None:
    """The model folder the demo wrote last, or None when there is no pointer or the folder is gone."""
    pointer = last_model_pointer()
    if not pointer.is_file():
        return None
    try:
        text = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("cannot read the last-model pointer %s: %s", pointer, exc)
        return None
    if not text:
        return None
    path = Path(text)
    if not (path / MODEL_CONFIG_FILE).is_file():
        logger.warning("the last demo model %s (from %s) no longer exists", path, pointer)
        return None
    return path
