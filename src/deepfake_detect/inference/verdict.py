"""From the embedded face tracks of one video to its :class:`VideoResult` (statuses, scores, timelines).

Track probability = mean of its scoring-window probabilities; video probability = the aggregation rule
(``evaluation.aggregation``) over all scoring windows of all tracks, with their track ids. A video with
no track at all is ``no_face``; one whose tracks have no run of ``min_clip_len`` frames is ``too_short``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from deepfake_detect.evaluation.aggregation import aggregate
from deepfake_detect.inference.engine import Engine
from deepfake_detect.inference.options import Settings
from deepfake_detect.inference.results import FaceResult, TimelinePoint, VideoResult
from deepfake_detect.inference.scoring import (
    longest_run,
    score_spans,
    scoring_windows,
    similarity_matrix,
    timeline_windows,
)
from deepfake_detect.types import FaceTrack, VideoStatus


class _Timer(Protocol):
    def add(self, stage: str, seconds: float) -> None: ...


@dataclass(frozen=True)
class Verdict:
    """What the scored tracks say about one video; :meth:`result` makes the :class:`VideoResult` once,
    complete with the pipeline's warnings and timings. ``problem``: why a video without a score has none."""

    path: str
    status: VideoStatus
    info: dict[str, Any]
    faces: list[FaceResult] = field(default_factory=list)
    fake_probability: float | None = None
    threshold: float | None = None
    problem: str = ""

    def result(self, *, warnings: Sequence[str] = (), timings: dict[str, float] | None = None) -> VideoResult:
        extra: dict[str, Any] = {
            "info": self.info,
            "warnings": list(warnings),
            "timings": dict(timings or {}),
        }
        if self.status is not VideoStatus.OK:
            return VideoResult.failed(self.path, self.status, self.problem, **extra)
        assert self.fake_probability is not None and self.threshold is not None
        return VideoResult(
            path=self.path,
            status=VideoStatus.OK,
            fake_probability=self.fake_probability,
            label="fake" if self.fake_probability >= self.threshold else "real",
            faces=self.faces,
            threshold=self.threshold,
            **extra,
        )


def build_verdict(
    path: str,
    tracks: list[FaceTrack],
    engine: Engine,
    settings: Settings,
    stride: int,
    timer: _Timer,
    info: dict[str, Any],
) -> Verdict:
    """Score every track that has a usable window and aggregate them into the video's verdict."""
    info = {**info, "tracks_seen": len(tracks)}
    if not tracks:
        return Verdict(path, VideoStatus.NO_FACE, info, problem=_no_face_message(info))
    faces, window_probs, window_tracks = [], [], []
    start = time.perf_counter()
    for track in tracks:
        scored = _score_track(track, engine, settings, stride)
        if scored is not None:
            face, probs = scored
            faces.append(face)
            window_probs += probs.tolist()
            window_tracks += [track.track_id] * len(probs)
    timer.add("head", time.perf_counter() - start)
    info["tracks_scored"] = len(faces)
    if not faces:
        message = _too_short_message(tracks, stride, settings.min_clip_len)
        return Verdict(path, VideoStatus.TOO_SHORT, info, problem=message)
    probability = aggregate(settings.aggregation, np.asarray(window_probs), np.asarray(window_tracks))
    return Verdict(path, VideoStatus.OK, info, faces, probability, settings.threshold)


def _score_track(
    track: FaceTrack, engine: Engine, settings: Settings, stride: int
) -> tuple[FaceResult, np.ndarray] | None:
    """(face result, scoring-window probabilities), or None when the track has no scoring window."""
    if track.embeddings is None:
        raise ValueError(f"track {track.track_id} has no embeddings to score")
    indices = list(track.frame_indices)
    spans = scoring_windows(indices, stride, settings.clip_len, settings.min_clip_len)
    if not spans:
        return None
    timeline = timeline_windows(
        indices, stride, settings.timeline_window, settings.timeline_hop, settings.min_clip_len
    )
    probs = score_spans(engine, track.embeddings, spans + timeline)  # one batched pass for both
    window_probs, timeline_probs = probs[: len(spans)], probs[len(spans) :]
    times = track.timestamps
    similarity: list[list[float]] | None = None
    similarity_frames: list[int] | None = None
    if settings.keep_similarity:
        positions, sim = similarity_matrix(track.embeddings, settings.similarity_frames)
        similarity = np.round(sim, 4).tolist()
        similarity_frames = [int(indices[p]) for p in positions]
    kept = settings.keep_embeddings
    face = FaceResult(
        track_id=track.track_id,
        n_frames=len(indices),
        first_frame=int(indices[0]),
        last_frame=int(indices[-1]),
        start_s=float(times[0]),
        end_s=float(times[-1]),
        fake_probability=float(np.mean(window_probs)),
        timeline=[
            TimelinePoint(float(times[a]), float(times[b - 1]), float(p))
            for (a, b), p in zip(timeline, timeline_probs, strict=True)
        ],
        similarity=similarity,
        thumbnail_jpeg=track.thumbnails[0] if track.thumbnails else None,
        n_windows=len(spans),
        similarity_frames=similarity_frames,
        thumbnails=list(track.thumbnails),
        embeddings=track.embeddings if kept else None,
        frame_indices=np.asarray(track.frame_indices) if kept else None,
    )
    return face, window_probs


def _no_face_message(info: dict[str, Any]) -> str:
    frames, stride = info.get("frames_used", 0), info.get("stride", 1)
    every = "every frame" if stride == 1 else f"every {stride}th frame"
    return f"no face was found in the {frames} frames examined ({every})"


def _too_short_message(tracks: list[FaceTrack], stride: int, min_clip_len: int) -> str:
    longest = max(longest_run(list(t.frame_indices), stride) for t in tracks)
    return (
        f"{len(tracks)} face track(s) found, but none was seen in {min_clip_len} frames at a constant "
        f"interval of {stride} (longest run: {longest} frames): the video is too short or its faces are "
        "missed too often to score"
    )
