"""From a face track's embeddings to probabilities (SPEC §2 'Two-pointer', inference reading).

A track's kept frame indices are cut into constant-interval runs (``faces.constant_interval_runs``).
Scoring windows: each run is split into clips of the model's ``clip_len`` (``faces.split_into_clips``)
plus the leftover when it has at least ``min_clip_len`` frames (a shorter sequence; the heads take
lengths). Timeline windows: ``timeline_window`` frames every ``timeline_hop`` frames along each run
(the last one aligned to the run's end). Windows are spans ``(start, stop)`` of positions in the
track's sorted frame list; every window lies inside one run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepfake_detect.faces import constant_interval_runs, split_into_clips
from deepfake_detect.inference.engine import Engine
from deepfake_detect.infra.similarity import cosine_similarity_matrix

Span = tuple[int, int]  # [start, stop) positions in a track's sorted frame list


def _run_offsets(frame_indices: Sequence[int], stride: int) -> list[tuple[int, int]]:
    """(first position, length) of each constant-interval run, in order (runs partition the track)."""
    spans, position = [], 0
    for run in constant_interval_runs(list(frame_indices), stride):
        spans.append((position, len(run)))
        position += len(run)
    return spans


def longest_run(frame_indices: Sequence[int], stride: int) -> int:
    return max((length for _, length in _run_offsets(frame_indices, stride)), default=0)


def scoring_windows(
    frame_indices: Sequence[int], stride: int, clip_len: int, min_clip_len: int
) -> list[Span]:
    """Clips of ``clip_len`` along each run, plus each run's leftover if it has >= ``min_clip_len`` frames."""
    windows: list[Span] = []
    for first, length in _run_offsets(frame_indices, stride):
        clips = split_into_clips(range(length), clip_len)
        windows += [(first + clip[0], first + clip[-1] + 1) for clip in clips]
        done = len(clips) * clip_len
        if length - done >= min_clip_len:
            windows.append((first + done, first + length))
    return windows


def timeline_windows(
    frame_indices: Sequence[int], stride: int, window: int, hop: int, min_len: int
) -> list[Span]:
    """Windows of ``window`` frames every ``hop`` along each run of >= ``min_len`` frames (a run shorter
    than ``window`` is one window); the last window of a run ends at the run's end."""
    windows: list[Span] = []
    for first, length in _run_offsets(frame_indices, stride):
        if length < min_len:
            continue
        size = min(window, length)
        starts = list(range(0, length - size + 1, hop))
        if starts[-1] + size < length:
            starts.append(length - size)
        windows += [(first + s, first + s + size) for s in starts]
    return windows


def score_spans(
    engine: Engine, embeddings: np.ndarray, spans: Sequence[Span], batch_size: int = 64
) -> np.ndarray:
    """P(fake) of each span of one track's float32 (N, D) embeddings, batched and right-padded."""
    probs = np.zeros(len(spans), dtype=np.float64)
    order = sorted(range(len(spans)), key=lambda i: spans[i][1] - spans[i][0])  # similar lengths together
    for chunk_start in range(0, len(order), batch_size):
        chunk = order[chunk_start : chunk_start + batch_size]
        lengths = np.array([spans[i][1] - spans[i][0] for i in chunk], dtype=np.int64)  # (B,)
        batch = np.zeros((len(chunk), int(lengths.max()), embeddings.shape[1]), dtype=np.float32)  # (B, T, D)
        for row, i in enumerate(chunk):
            start, stop = spans[i]
            batch[row, : stop - start] = embeddings[start:stop]
        probs[chunk] = engine.score(batch, lengths)
    return probs


def similarity_matrix(embeddings: np.ndarray, max_frames: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities of up to ``max_frames`` evenly spaced rows of (N, D) embeddings.

    Returns (positions (K,), similarities (K, K) float64 in [-1, 1]).
    """
    n = len(embeddings)
    positions = np.unique(np.linspace(0, n - 1, num=min(n, max_frames)).round().astype(np.int64))  # (K,)
    chosen = embeddings[positions].astype(np.float64)  # (K, D)
    return positions, np.clip(cosine_similarity_matrix(chosen, eps=1e-12), -1.0, 1.0)  # (K, K)
