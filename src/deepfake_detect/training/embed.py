"""Embed every frame of the store's clips with a (trained) extractor, cached on disk (SPEC §3 'Stores').

Cache layout: ``cache_dir/<digest>/<clip_key with '/' -> '__'>.npy``, one float16 (T, D) array per clip,
written atomically (temp file + rename). ``digest`` identifies the extractor's weights, so a retrained
extractor never reads stale embeddings; a clip already cached under the digest is read, not recomputed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deepfake_detect.data.store import ClipStore, clip_key, frame_rows
from deepfake_detect.infra.files import atomic_path
from deepfake_detect.models import FeatureExtractor
from deepfake_detect.models.frame_dir import model_dir_kind
from deepfake_detect.models.frame_extractor import FrameFeatureExtractor, load_frame_extractor
from deepfake_detect.training.extractor import extractor_digest, load_trained_extractor
from deepfake_detect.types import ClipRow

Extractor = FeatureExtractor | FrameFeatureExtractor

logger = logging.getLogger(__name__)


def cache_file(cache_dir: Path, digest: str, key: str) -> Path:
    """Where the embeddings of clip ``key`` made by extractor ``digest`` are cached."""
    return Path(cache_dir) / digest / (key.replace("/", "__") + ".npy")


def _load_cached(path: Path, n_frames: int, dim: int) -> np.ndarray | None:
    """The cached array when it exists and has the expected dtype and shape (else None: recompute)."""
    if not path.is_file():
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        logger.warning("unreadable cache file %s (%s); recomputing", path, exc)
        return None
    if array.dtype != np.float16 or array.shape != (n_frames, dim):
        logger.warning(
            "cache file %s is %s %s, expected float16 %s; recomputing",
            path,
            array.dtype,
            array.shape,
            (n_frames, dim),
        )
        return None
    return array


@contextlib.contextmanager
def rich_progress(enabled: bool, description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A transient rich progress bar; yields ``advance(n)`` (a no-op when disabled)."""
    if not enabled or total <= 0:
        yield lambda n: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _save_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


@contextlib.contextmanager
def _inference_layout(extractor: Extractor, channels_last: bool) -> Iterator[None]:
    """Eval mode (and channels-last weights) for the duration; the module's mode and layout are restored."""
    was_training = extractor.training
    extractor.eval()
    if channels_last:
        extractor.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        if channels_last:
            extractor.to(memory_format=torch.contiguous_format)
        extractor.train(was_training)


def embed_frames(
    extractor: Extractor,
    frames: np.ndarray,
    *,
    batch_size: int = 64,
    precision: str = "32",
    channels_last: bool = False,
) -> np.ndarray:
    """uint8 (T, H, W, 3) crops -> float16 (T, D) embeddings, ``batch_size`` frames per forward pass.

    ``precision="bf16-mixed"`` runs the forward pass under bfloat16 autocast (values are returned as float16).
    """
    device = next(extractor.parameters()).device
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(frames), batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(frames[start : start + batch_size])).to(device)
            x = extractor.prepare(chunk)  # (N, 3, S, S)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(
                device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed"
            ):
                emb = extractor(x)  # (N, D)
            outputs.append(emb.float().cpu())
    return torch.cat(outputs).numpy().astype(np.float16)  # (T, D)


def _read_cache(
    records: list[ClipRow], cache_dir: Path, digest: str, dim: int
) -> tuple[dict[str, np.ndarray], list[ClipRow]]:
    """(clip_key -> cached array, rows still to embed)."""
    found: dict[str, np.ndarray] = {}
    todo = []
    for row in records:
        key = clip_key(row)
        cached = _load_cached(cache_file(cache_dir, digest, key), row.n_frames, dim)
        if cached is None:
            todo.append(row)
        else:
            found[key] = cached
    return found, todo


def embed_clips(
    extractor: Extractor,
    store: ClipStore,
    rows: pd.DataFrame,
    cache_dir: Path,
    *,
    digest: str,
    batch_size: int = 64,
    precision: str = "32",
    progress: bool = True,
    channels_last: bool = True,
) -> dict[str, np.ndarray]:
    """clip_key -> float16 (T, D) embeddings of every clip in ``rows`` (computed once, then read from cache).

    The extractor runs on the device its parameters are on, in eval mode (its mode is restored after).
    """
    if not digest or "/" in digest:
        raise ValueError(f"digest must be a non-empty name without '/', got {digest!r}")
    records = frame_rows(rows)
    result, todo = _read_cache(records, cache_dir, digest, extractor.embed_dim)
    logger.info("embeddings: %d clip(s) cached, %d to compute", len(result), len(todo))
    with (
        _inference_layout(extractor, channels_last),
        rich_progress(progress, "embedding", len(todo)) as advance,
    ):
        for row in todo:
            frames = store.read_clip(row)  # (T, H, W, 3) uint8
            array = embed_frames(
                extractor, frames, batch_size=batch_size, precision=precision, channels_last=channels_last
            )
            _save_atomic(cache_file(cache_dir, digest, clip_key(row)), array)
            result[clip_key(row)] = array
            advance(1)
    return {clip_key(row): result[clip_key(row)] for row in records}


def load_extractor(path: Path, member: int | None = None) -> tuple[Extractor, str]:
    """(extractor, cache digest) from ``path``: a train-extractor output folder, or an imported frame-model
    directory whose member ``member`` (default 0) becomes a frozen extractor of its pooled features."""
    path = Path(path)
    if path.is_dir() and model_dir_kind(path) == "frame":
        frame = load_frame_extractor(path, member or 0)
        logger.info(
            "frame model %s member %d: %d-d pooled features; %s",
            path,
            member or 0,
            frame.embed_dim,
            frame.record["differences"],
        )
        return frame, extractor_digest(frame)
    if member is not None:
        raise ValueError(f"--member applies to an imported frame-model directory, and {path} is not one")
    return load_trained_extractor(path)
