"""Training (SPEC §2 'Training', layer 4): the hinge-loss extractor, clip embeddings, the sequence head.

Typical flow::

    run = train_extractor(config, store, train_rows, val_rows, out / "extractor")
    emb = embed_clips(run.extractor, store, rows, out / "embeddings", digest=run.digest)
    run_h = train_head(config, emb, train_rows, val_rows, out / "head")
    probs = predict_clips(run_h.head, emb, test_rows)

The pre-rename names ``train_detector``, ``DetectorRun``, ``DetectorModule`` and ``labelled_clips`` still
resolve, with a logging warning naming the new one.
"""

import logging
from typing import Any

from deepfake_detect.training.datamodules import ClipWindowDataset, EmbeddingDataset, pad_collate
from deepfake_detect.training.embed import cache_file, embed_clips, embed_frames, load_extractor
from deepfake_detect.training.extractor import (
    ExtractorModule,
    ExtractorRun,
    build_extractor,
    extractor_digest,
    load_trained_extractor,
    train_extractor,
)
from deepfake_detect.training.head import HeadModule, HeadRun, predict_clips, train_head
from deepfake_detect.training.loss_curves import plot_loss_curves
from deepfake_detect.training.selection import filter_labelled, split_train_val

__all__ = [
    "ClipWindowDataset",
    "EmbeddingDataset",
    "ExtractorModule",
    "ExtractorRun",
    "HeadModule",
    "HeadRun",
    "build_extractor",
    "cache_file",
    "embed_clips",
    "embed_frames",
    "extractor_digest",
    "filter_labelled",
    "load_extractor",
    "load_trained_extractor",
    "pad_collate",
    "plot_loss_curves",
    "predict_clips",
    "split_train_val",
    "train_extractor",
    "train_head",
]

# Deprecated names (before issue 9's renames) -> current names.
_DEPRECATED = {
    "train_detector": "train_head",
    "DetectorRun": "HeadRun",
    "DetectorModule": "HeadModule",
    "labelled_clips": "filter_labelled",
}


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        new = _DEPRECATED[name]
        logging.getLogger(__name__).warning("%s.%s is deprecated; use %s", __name__, name, new)
        return globals()[new]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
