"""deepfake-detect: tell whether a video of a person's face is a deepfake.

The public API is imported lazily so that ``import deepfake_detect`` does no work
(no torch import, no model loading) until a name is actually used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from deepfake_detect._version import __version__

_LAZY = {
    "Detector": "deepfake_detect.inference",
    "load_config": "deepfake_detect.config",
    "constant_interval_runs": "deepfake_detect.faces",
    "split_into_clips": "deepfake_detect.faces",
}

if TYPE_CHECKING:  # pragma: no cover
    from deepfake_detect.config import load_config
    from deepfake_detect.faces import constant_interval_runs, split_into_clips
    from deepfake_detect.inference import Detector

__all__ = ["Detector", "__version__", "constant_interval_runs", "load_config", "split_into_clips"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'deepfake_detect' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
