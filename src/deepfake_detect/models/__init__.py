"""Models (SPEC §2, layer 3): frame backbones, the per-frame feature extractor, sequence heads and
model directories. Extension points: :data:`BACKBONES` and :data:`SEQUENCE_HEADS`."""

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
)
from deepfake_detect.models.io import (
    LoadedModel,
    ModelDirConfig,
    ModelDirError,
    load_model_dir,
    read_model_config,
    save_model_dir,
)

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
    "load_model_dir",
    "load_weights",
    "read_model_config",
    "read_state_dict",
    "save_model_dir",
]
