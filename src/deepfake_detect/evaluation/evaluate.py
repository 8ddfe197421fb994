"""Clip- and video-level evaluation: metrics.json, predictions tables, ROC and score-histogram PNGs.

A *clip predictions* table has one row per clip with the columns of :data:`PREDICTION_COLUMNS`
(``label`` 1 fake / 0 real, ``fake_probability`` in [0, 1]). Video-level predictions aggregate each video's
clip probabilities with a rule of the :data:`~deepfake_detect.evaluation.aggregation.AGGREGATIONS` registry
(default ``mean``). Metrics come from :func:`deepfake_detect.evaluation.metrics.summarize`.

:func:`predict_with_model` scores a clip store with either kind of model directory: a model this tool
trained (extractor + sequence head) or an imported frame model (``evaluation.frame_scores``: per-crop
P(fake) averaged over a clip's crops, then over the ensemble's members); :func:`model_summary` says which
model it was, for ``metrics.json``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepfake_detect.data.store import ClipStore, clip_keys
from deepfake_detect.evaluation.aggregation import aggregate
from deepfake_detect.evaluation.frame_scores import frame_model_clip_probabilities, frame_model_summary
from deepfake_detect.evaluation.metrics import summarize
from deepfake_detect.evaluation.plots import roc_figure, score_histogram
from deepfake_detect.infra.files import atomic_path, write_json
from deepfake_detect.models.dir_config import model_dir_kind, read_model_config
from deepfake_detect.models.io import load_model_dir
from deepfake_detect.training import embed_clips, extractor_digest, predict_clips

logger = logging.getLogger(__name__)

PREDICTION_COLUMNS = ["clip_key", "video_id", "source_id", "track", "clip_index", "label", "fake_probability"]
VIDEO_COLUMNS = ["video_id", "label", "n_clips", "fake_probability"]


class EvaluationError(ValueError):
    """Predictions that cannot be evaluated (missing columns, unlabelled rows, probabilities out of range)."""


@dataclass
class EvaluationResult:
    """Metrics at clip and video level and the files written (name -> path)."""

    clip: dict[str, float]
    video: dict[str, float]
    aggregation: str
    paths: dict[str, Path] = field(default_factory=dict)
    model: dict[str, Any] | None = None


def clip_predictions(rows: pd.DataFrame, probabilities: np.ndarray) -> pd.DataFrame:
    """Attach fake probabilities (in row order) to manifest rows -> a clip predictions table."""
    probabilities = np.asarray(probabilities, dtype=float).reshape(-1)
    if len(probabilities) != len(rows):
        raise EvaluationError(f"{len(probabilities)} probabilities for {len(rows)} clips")
    table = pd.DataFrame({col: rows[col].to_numpy() for col in PREDICTION_COLUMNS[:-1] if col in rows})
    if "source_id" not in table:
        table["source_id"] = table["video_id"]
    table["fake_probability"] = probabilities
    return table[[c for c in PREDICTION_COLUMNS if c in table.columns]]


def check_predictions(table: pd.DataFrame) -> None:
    """Raise :class:`EvaluationError` unless ``table`` is a labelled clip predictions table."""
    missing = {"video_id", "label", "fake_probability"} - set(table.columns)
    if missing:
        raise EvaluationError(f"predictions lack column(s) {sorted(missing)}")
    if table.empty:
        raise EvaluationError("no predictions to evaluate")
    if not table["label"].isin([0, 1]).all():
        raise EvaluationError("every evaluated clip needs a label 0 (real) or 1 (fake)")
    probs = table["fake_probability"].to_numpy(dtype=float)
    if not np.all(np.isfinite(probs)) or probs.min() < 0.0 or probs.max() > 1.0:
        raise EvaluationError("fake_probability must be finite and within [0, 1]")


def video_predictions(table: pd.DataFrame, aggregation: str = "mean") -> pd.DataFrame:
    """One row per video: its label and the aggregated fake probability of its clips."""
    check_predictions(table)
    rows: list[dict[str, Any]] = []
    for video_id, group in table.groupby("video_id", sort=True):
        labels = group["label"].unique()
        if len(labels) != 1:
            raise EvaluationError(f"video {video_id} has clips with different labels {sorted(labels)}")
        tracks = group["track"].to_numpy() if "track" in group else None
        prob = aggregate(aggregation, group["fake_probability"].to_numpy(dtype=float), tracks)
        rows.append(
            {"video_id": video_id, "label": int(labels[0]), "n_clips": len(group), "fake_probability": prob}
        )
    return pd.DataFrame(rows, columns=VIDEO_COLUMNS)


def compute_metrics(table: pd.DataFrame, *, eps: float = 1e-15, threshold: float = 0.5) -> dict[str, float]:
    """``metrics.summarize`` over a predictions table (clip or video level)."""
    check_predictions(table)
    y_true = table["label"].to_numpy(dtype=int)
    y_prob = table["fake_probability"].to_numpy(dtype=float)
    return {k: float(v) for k, v in summarize(y_true, y_prob, eps=eps, threshold=threshold).items()}


def write_csv(path: Path, table: pd.DataFrame) -> Path:
    """Write a CSV atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return path


def evaluate_predictions(
    table: pd.DataFrame,
    out_dir: Path,
    *,
    eps: float = 1e-15,
    threshold: float = 0.5,
    aggregation: str = "mean",
    title: str = "",
    plots: bool = True,
    model: dict[str, Any] | None = None,
) -> EvaluationResult:
    """Evaluate a clip predictions table and write every artefact into ``out_dir``.

    Files: ``metrics.json`` (clip and video metrics, settings, and ``model``, which model produced the
    predictions, when given: e.g. :func:`model_summary`), ``predictions.csv`` (clip level),
    ``video_predictions.csv``, ``roc.png`` (clip and video curves), ``score_histogram.png`` (clip level);
    the two PNGs only when ``plots``.
    """
    out_dir = Path(out_dir)
    videos = video_predictions(table, aggregation)
    clip_metrics = compute_metrics(table, eps=eps, threshold=threshold)
    video_metrics = compute_metrics(videos, eps=eps, threshold=threshold)
    payload = {
        "clip": clip_metrics,
        "video": video_metrics,
        "aggregation": aggregation,
        "eps": eps,
        "threshold": threshold,
    }
    if model is not None:
        payload["model"] = model
    paths = {
        "metrics": write_json(out_dir / "metrics.json", payload, verbatim_lists=True),
        "predictions": write_csv(out_dir / "predictions.csv", table),
        "video_predictions": write_csv(out_dir / "video_predictions.csv", videos),
    }
    if plots:
        _write_plots(table, videos, out_dir, paths, threshold=threshold, aggregation=aggregation, title=title)
    logger.info(
        "evaluation written to %s (clip AUC %.3f, video AUC %.3f)",
        out_dir,
        clip_metrics.get("roc_auc", float("nan")),
        video_metrics.get("roc_auc", float("nan")),
    )
    return EvaluationResult(clip_metrics, video_metrics, aggregation, paths, model)


def _write_plots(
    table: pd.DataFrame,
    videos: pd.DataFrame,
    out_dir: Path,
    paths: dict[str, Path],
    *,
    threshold: float,
    aggregation: str,
    title: str,
) -> None:
    curves = {
        "clips": (table["label"].to_numpy(int), table["fake_probability"].to_numpy(float)),
        f"videos ({aggregation})": (
            videos["label"].to_numpy(int),
            videos["fake_probability"].to_numpy(float),
        ),
    }
    prefix = f"{title}: " if title else ""
    paths["roc"] = roc_figure(curves, out_dir / "roc.png", title=f"{prefix}ROC")
    paths["score_histogram"] = score_histogram(
        curves["clips"][0],
        curves["clips"][1],
        out_dir / "score_histogram.png",
        threshold=threshold,
        title=f"{prefix}clip fake probability by true class",
    )


def load_predictions(path: Path) -> pd.DataFrame:
    """Read a clip predictions CSV (as written by :func:`evaluate_predictions`) and check it."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"predictions file not found: {path}")
    table = pd.read_csv(path)
    check_predictions(table)
    return table


def labelled_rows(store: ClipStore, split: str | None = None) -> pd.DataFrame:
    """The store's ok clips with a label (optionally only manifest ``split`` == ``split``), with clip keys."""
    rows = store.clips()
    if split is not None:
        rows = rows[rows["split"].astype(str).str.lower() == split.lower()]
    rows = rows[rows["label"].isin([0, 1])].reset_index(drop=True)
    if rows.empty:
        where = f" with split {split!r}" if split else ""
        raise EvaluationError(f"the clip store {store.root} holds no labelled clip{where}")
    rows["clip_key"] = clip_keys(rows)
    return rows


def predict_with_model(
    model_dir: Path,
    store: ClipStore,
    rows: pd.DataFrame,
    cache_dir: Path,
    *,
    batch_size: int = 64,
    progress: bool = False,
) -> pd.DataFrame:
    """Clip predictions of a model directory on ``rows`` of ``store``, cached in ``cache_dir``.

    A trained model (``kind: sequence``): its extractor's embeddings (cached under ``cache_dir/<digest>``)
    through its head. An imported frame model (``kind: frame``): each member's per-crop P(fake) averaged
    over the clip's crops, then over the members (per-crop arrays cached under
    ``cache_dir/frame_probabilities``).
    """
    if model_dir_kind(model_dir) == "frame":
        probabilities = frame_model_clip_probabilities(
            model_dir,
            store,
            rows,
            Path(cache_dir) / "frame_probabilities",
            batch_size=batch_size,
            progress=progress,
        )
        return clip_predictions(rows, probabilities)
    loaded = load_model_dir(model_dir)
    digest = extractor_digest(loaded.extractor)
    embeddings = embed_clips(
        loaded.extractor, store, rows, cache_dir, digest=digest, batch_size=batch_size, progress=progress
    )
    return clip_predictions(rows, predict_clips(loaded.head, embeddings, rows))


def model_summary(model_dir: Path) -> dict[str, Any]:
    """Which model a directory holds (kind, path, architecture, members or head), for ``metrics.json``."""
    model_dir = Path(model_dir)
    if model_dir_kind(model_dir) == "frame":
        return frame_model_summary(model_dir)
    config = read_model_config(model_dir)
    summary: dict[str, Any] = {
        "kind": "sequence",
        "path": str(model_dir),
        "backbone": config.backbone,
        "head": config.head,
    }
    if config.frame_extractor is not None:
        summary["frame_extractor"] = config.frame_extractor.get("source")
    return summary
