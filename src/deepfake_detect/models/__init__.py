"""Models (SPEC §2, layer 3): frame backbones, the per-frame feature extractor, sequence heads and
model directories. Extension points: :data:`BACKBONES` and :data:`SEQUENCE_HEADS`.

Names are imported on first use (PEP 562), so that ``models.dir_config`` can be read without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepfake_detect.models.backbones import (
        BACKBONES,
        Backbone,
        WeightsError,
        create_backbone,
        load_weights,
        read_state_dict,
    )
    from deepfake_detect.models.extractor import FeatureExtractor
    from deepfake_detect.models.heads import (
        SEQUENCE_HEADS,
        FrameMLPHead,
        LSTMHead,
        MeanMLPHead,
        SequenceHead,
        create_head,
        head_options,
        resolve_head_kwargs,
    )
    from deepfake_detect.models.io import (
        LoadedModel,
        ModelDirConfig,
        ModelDirError,
        load_model_dir,
        read_model_config,
        save_model_dir,
    )

_HOMES = {
    "backbones": (
        "BACKBONES",
        "Backbone",
        "WeightsError",
        "create_backbone",
        "load_weights",
        "read_state_dict",
    ),
    "extractor": ("FeatureExtractor",),
    "heads": (
        "SEQUENCE_HEADS",
        "FrameMLPHead",
        "LSTMHead",
        "MeanMLPHead",
        "SequenceHead",
        "create_head",
        "head_options",
        "resolve_head_kwargs",
    ),
    "io": (
        "LoadedModel",
        "ModelDirConfig",
        "ModelDirError",
        "load_model_dir",
        "read_model_config",
        "save_model_dir",
    ),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "BACKBONES",
    "SEQUENCE_HEADS",
    "Backbone",
    "FeatureExtractor",
    "FrameMLPHead",
    "LSTMHead",
    "LoadedModel",
    "MeanMLPHead",
    "ModelDirConfig",
    "ModelDirError",
    "SequenceHead",
    "WeightsError",
    "create_backbone",
    "create_head",
    "head_options",
    "load_model_dir",
    "load_weights",
    "read_model_config",
    "read_state_dict",
    "resolve_head_kwargs",
    "save_model_dir",
]
