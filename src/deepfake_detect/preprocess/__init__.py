"""Preprocessing (SPEC §3, layer 4): a dataset's videos -> face-crop clips in a clip store."""

from deepfake_detect.preprocess.process import process_video
from deepfake_detect.preprocess.runner import (
    PreprocessError,
    PreprocessProgress,
    PreprocessSummary,
    ProgressCallback,
    parse_shard,
    preprocess_dataset,
    select_records,
    shard_of,
    store_settings,
)

__all__ = [
    "PreprocessError",
    "PreprocessProgress",
    "PreprocessSummary",
    "ProgressCallback",
    "parse_shard",
    "preprocess_dataset",
    "process_video",
    "select_records",
    "shard_of",
    "store_settings",
]
