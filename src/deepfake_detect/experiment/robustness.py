"""Robustness of a trained model to how its test videos were encoded (the question a user asks about their
own footage): the test videos of repetition 0, re-encoded with H.264 at several qualities and at half
resolution, then preprocessed, embedded and scored again by that repetition's extractor and head.

Each condition is a fresh clip store under ``OUT/robustness/<condition>``; a video whose faces are lost
after re-encoding simply contributes fewer clips, and the table says how many clips were scored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from deepfake_detect.config import Config
from deepfake_detect.data.store import ClipStore, clip_keys
from deepfake_detect.evaluation.metrics import roc_auc
from deepfake_detect.models import FeatureExtractor
from deepfake_detect.preprocess import preprocess_dataset
from deepfake_detect.training import HeadRun, embed_clips, extractor_digest, predict_clips
from deepfake_detect.types import VideoRecord
from deepfake_detect.video.decode import iter_frames, probe
from deepfake_detect.video.encode import write_video

logger = logging.getLogger(__name__)

CONDITIONS: dict[str, tuple[int, float]] = {  # name -> (H.264 CRF, scale of width and height)
    "H.264 CRF 23": (23, 1.0),
    "H.264 CRF 32": (32, 1.0),
    "H.264 CRF 40": (40, 1.0),
    "half resolution (CRF 23)": (23, 0.5),
}


def _even(n: float) -> int:
    return max(2, round(n / 2) * 2)


def reencode(src: Path, dst: Path, crf: int, scale: float = 1.0) -> Path:
    """Decode ``src`` and write it again as H.264 at ``crf``, resized by ``scale`` (even sizes)."""
    info = probe(src)
    size = (_even(info.width * scale), _even(info.height * scale))

    def frames() -> Any:
        for frame in iter_frames(src):
            image = frame.image
            if image.shape[1::-1] != size:
                image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
            yield image

    write_video(dst, frames(), fps=info.fps or 25.0, crf=crf)
    return dst


def _score(
    config: Config, store: ClipStore, extractor: FeatureExtractor, head: HeadRun, cache: Path
) -> tuple[int, int, float]:
    """(clips, videos, clip ROC AUC) of a clip store's labelled clips under the given model."""
    rows = store.clips()
    rows = rows[rows["label"].isin([0, 1])].reset_index(drop=True)
    if rows.empty or rows["label"].nunique() < 2:
        return len(rows), int(rows["video_id"].nunique()) if len(rows) else 0, float("nan")
    rows["clip_key"] = clip_keys(rows)
    embeddings = embed_clips(
        extractor, store, rows, cache, digest=extractor_digest(extractor), progress=False
    )
    probabilities = predict_clips(head.head, embeddings, rows)
    return len(rows), int(rows["video_id"].nunique()), roc_auc(rows["label"].to_numpy(int), probabilities)


def robustness_table(
    config: Config,
    records: Sequence[VideoRecord],
    test_videos: Sequence[str],
    extractor: FeatureExtractor,
    head: HeadRun,
    out_dir: Path,
    conditions: dict[str, tuple[int, float]] | None = None,
) -> list[dict[str, Any]]:
    """One row per condition: clips and videos scored, clip ROC AUC (the first row: as generated)."""
    wanted = set(test_videos)
    chosen = [r for r in records if r.video_id in wanted]
    rows: list[dict[str, Any]] = []
    for name, (crf, scale) in {"as generated": (0, 1.0), **(conditions or CONDITIONS)}.items():
        folder = Path(out_dir) / re.sub(r"[^A-Za-z0-9._-]+", "_", name)
        if crf == 0:
            recs = chosen
        else:
            recs = [
                VideoRecord(
                    r.video_id,
                    reencode(r.path, folder / "videos" / r.path.name, crf, scale),
                    r.label,
                    r.source_id,
                    r.dataset,
                )
                for r in chosen
            ]
        preprocess_dataset(recs, folder / "clips", config, workers=config.preprocess.workers)
        clips, videos, auc = _score(config, ClipStore(folder / "clips"), extractor, head, folder / "cache")
        rows.append({"condition": name, "videos": videos, "clips": clips, "roc_auc": auc})
        logger.info("robustness %s: %d clips of %d videos, ROC AUC %.3f", name, clips, videos, auc)
    return rows


def robustness_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["condition", "videos", "clips", "roc_auc"])
