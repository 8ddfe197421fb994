"""An imported frame model's P(fake) for the clip store's clips (``evaluate`` and ``experiment``, issue 10).

One member (:class:`FrameScorer`): its own classifier (published head and output rule, fp32, eval mode)
scores every crop of a clip, the store's square face crops prepared as
:meth:`~deepfake_detect.models.frame_extractor.FrameFeatureExtractor.prepare` does (the recipe's crop rule
to its input size, then its normalisation; see ``models.frame_extractor`` for what of the recipe applies to
a stored crop); the clip's P(fake) is the **mean over its crops**. Per-crop probabilities are float32,
cached per (weights + recipe digest, clip).

An ensemble (:func:`frame_model_clip_probabilities`): the mean over its members of their clip
probabilities, members loaded one at a time. The recipe's own video rule (e.g. the winner's confident
strategy over a video's crops) is not used here: video level is an ``evaluation.aggregation`` rule over
clip probabilities, as for every model ``evaluate`` scores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepfake_detect.data.store import ClipStore, clip_key, frame_rows
from deepfake_detect.infra.files import atomic_path
from deepfake_detect.models.frame import FrameClassifier
from deepfake_detect.models.frame_config import read_frame_model_config
from deepfake_detect.models.frame_extractor import DIFFERENCES, FrameFeatureExtractor, load_frame_extractor
from deepfake_detect.training import cache_file, extractor_digest
from deepfake_detect.training.embed import rich_progress

__all__ = [
    "CLIP_RULE",
    "ENSEMBLE_RULE",
    "FrameScorer",
    "frame_model_clip_probabilities",
    "frame_model_summary",
    "load_frame_scorer",
]

logger = logging.getLogger(__name__)

CLIP_RULE = (
    "the member's own classifier scores every crop of a clip; the clip's P(fake) is the mean over its crops"
)
ENSEMBLE_RULE = "the mean over the members of their clip P(fake)"


@dataclass
class FrameScorer:
    """One frame-model member: the extractor (crop preparation + network), its classifier, their digest."""

    extractor: FrameFeatureExtractor
    classifier: FrameClassifier
    digest: str

    def crop_probabilities(self, crops: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """uint8 (T, H, W, 3) crops -> float32 (T,) P(fake) of the member's own classifier (fp32, eval)."""
        out = []
        with torch.inference_mode():
            for start in range(0, len(crops), batch_size):
                x = self.extractor.prepare(crops[start : start + batch_size])  # (N, 3, S, S)
                out.append(self.classifier(x).float().cpu())  # (N,)
        return torch.cat(out).numpy().astype(np.float32)

    def clip_probabilities(
        self,
        store: ClipStore,
        rows: pd.DataFrame,
        cache_dir: Path,
        *,
        batch_size: int = 64,
        progress: bool = False,
        description: str = "scoring clips",
    ) -> np.ndarray:
        """Mean per-crop P(fake) for each clip of ``rows`` (float64, row order); the per-crop arrays are
        cached under ``cache_dir/<digest>/`` and read back when present and of the clip's length."""
        records = frame_rows(rows)
        means = []
        with rich_progress(progress, description, len(records)) as advance:
            for row in records:
                path = cache_file(cache_dir, self.digest, clip_key(row))
                crops = _load_probabilities(path, row.n_frames)
                if crops is None:
                    crops = self.crop_probabilities(store.read_clip(row), batch_size)
                    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                        np.save(handle, crops, allow_pickle=False)
                means.append(float(crops.astype(np.float64).mean()))
                advance(1)
        return np.asarray(means, dtype=np.float64)


def _load_probabilities(path: Path, n_frames: int) -> np.ndarray | None:
    """A cached float32 (T,) array, or None when absent or not of that shape (then it is recomputed)."""
    if not path.is_file():
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return array if array.dtype == np.float32 and array.shape == (n_frames,) else None


def load_frame_scorer(path: Path | str, member: int = 0) -> FrameScorer:
    """Member ``member`` of the frame-model directory ``path`` (CPU, eval mode; ``ModelDirError`` when the
    directory or the member cannot be used)."""
    config = read_frame_model_config(path)
    extractor = load_frame_extractor(path, member)
    classifier = FrameClassifier(extractor.network, config.network.output).eval()
    return FrameScorer(extractor, classifier, extractor_digest(extractor))


def frame_model_clip_probabilities(
    path: Path | str,
    store: ClipStore,
    rows: pd.DataFrame,
    cache_dir: Path,
    *,
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Clip P(fake) of the whole frame model: each member's mean over a clip's crops, then the mean over the
    members (float64, row order). Members are loaded one at a time; per-crop arrays are cached in
    ``cache_dir``."""
    path = Path(path)
    config = read_frame_model_config(path)
    n = len(config.members)
    per_member = []
    for member in range(n):
        scorer = load_frame_scorer(path, member)
        logger.info("scoring %d clip(s) with %s, member %d of %d", len(rows), path, member + 1, n)
        per_member.append(
            scorer.clip_probabilities(
                store,
                rows,
                cache_dir,
                batch_size=batch_size,
                progress=progress,
                description=f"{config.network.arch} member {member + 1}/{n}",
            )
        )
        del scorer
    return np.mean(np.stack(per_member), axis=0) if per_member else np.zeros(0)


def frame_model_summary(path: Path | str) -> dict[str, Any]:
    """Which frame model scored the clips and how (for ``metrics.json`` and the CLI table)."""
    path = Path(path)
    config = read_frame_model_config(path)
    recipe = config.recipe
    return {
        "kind": "frame",
        "path": str(path),
        "family": config.card.get("family"),
        "arch": config.network.arch,
        "members": len(config.members),
        "sources": [m.source for m in config.members],
        "input": f"{recipe.crop.rule} to {recipe.crop.size} px",
        "clip_rule": CLIP_RULE,
        "ensemble_rule": ENSEMBLE_RULE,
        "crops": DIFFERENCES,
    }
