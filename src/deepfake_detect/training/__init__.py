"""Training (SPEC §2 'Training', layer 4): the hinge-loss extractor, clip embeddings, the sequence detector.

Typical flow::

    run = train_extractor(config, store, train_rows, val_rows, out / "extractor")
    emb = embed_clips(run.extractor, store, rows, out / "embeddings", digest=run.digest)
    det = train_detector(config, emb, train_rows, val_rows, out / "detector")
    probs = predict_clips(det.head, emb, test_rows)
"""

from deepfake_detect.training.datamodules import ClipWindowDataset, EmbeddingDataset, pad_collate
from deepfake_detect.training.detector import DetectorModule, DetectorRun, predict_clips, train_detector
from deepfake_detect.training.embed import cache_file, embed_clips, embed_frames, load_extractor
from deepfake_detect.training.extractor import (
    ExtractorModule,
    ExtractorRun,
    build_extractor,
    extractor_digest,
    load_trained_extractor,
    train_extractor,
)
from deepfake_detect.training.plots import plot_loss_curves
from deepfake_detect.training.splits import labelled_clips, split_train_val

__all__ = [
    "ClipWindowDataset",
    "DetectorModule",
    "DetectorRun",
    "EmbeddingDataset",
    "ExtractorModule",
    "ExtractorRun",
    "build_extractor",
    "cache_file",
    "embed_clips",
    "embed_frames",
    "extractor_digest",
    "labelled_clips",
    "load_extractor",
    "load_trained_extractor",
    "pad_collate",
    "plot_loss_curves",
    "predict_clips",
    "split_train_val",
    "train_detector",
    "train_extractor",
]
