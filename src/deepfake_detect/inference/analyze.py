"""The streaming video -> :class:`VideoResult` pipeline (one video, in the calling process).

probe -> adaptive stride -> decode (one pass) -> detect -> crop -> track (``faces.track_faces``) ->
crops embedded ``batch_size`` at a time as they arrive -> per-track windows scored by the head ->
aggregation. Only embeddings (float32, one row per face per kept frame) and a few small JPEG
thumbnails per track are kept, so memory does not grow with the video's length beyond that.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import torch

from deepfake_detect.faces import FaceDetector, TrackCollector, detect_batch, track_faces
from deepfake_detect.faces.detectors.base import supports_scaled
from deepfake_detect.inference.engine import Engine
from deepfake_detect.inference.options import Settings
from deepfake_detect.inference.results import VideoResult
from deepfake_detect.inference.verdict import build_verdict
from deepfake_detect.types import Detection, FaceTrack, Frame, TrackedFace, VideoStatus
from deepfake_detect.video import DecodeError, VideoError, VideoInfo, VideoTooLargeError, choose_stride
from deepfake_detect.video import iter_frames as decode_frames
from deepfake_detect.video import probe as probe_video

logger = logging.getLogger(__name__)

T = TypeVar("T")

TIMED_STAGES = ("decode", "detect", "crop", "embed", "head")


class StageTimer:
    """Wall-clock seconds per stage, accumulated."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def timed(self, stage: str, fn: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.add(stage, time.perf_counter() - start)

    def iterate(self, stage: str, items: Iterable[T]) -> Iterator[T]:
        """Yield ``items``, charging the time spent producing each to ``stage``."""
        iterator = iter(items)
        while True:
            start = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                self.add(stage, time.perf_counter() - start)
            yield item


class TimedDetector:
    """A face detector whose calls are charged to the "detect" stage and run with ``threads`` torch
    threads (None: unchanged). MTCNN is thousands of small operations per frame: on 2 shared cores, 2
    threads are many times slower than 1 (benchmarks/RESULTS.md, "Figures behind the code"; threads spin
    while the other core is busy), so the default is 1 while the embedding keeps every thread.
    ``detect_batch`` passes batches (of the ``faces.detect_batch`` option's size) on to the backend's own
    ``detect_batch``; likewise
    ``detect_scaled`` (the track-guided keyframe scan, ``faces.guided``), there only if the backend has it."""

    detect_scaled: Callable[[list[np.ndarray], float], list[list[Detection]]]

    def __init__(self, detector: FaceDetector, timer: StageTimer, threads: int | None) -> None:
        self.name = detector.name
        self._detector, self._timer, self._threads = detector, timer, threads
        if supports_scaled(detector):
            self.detect_scaled = self._scaled

    def _scaled(self, images: list[np.ndarray], min_face_size: float) -> list[list[Detection]]:
        scaled = self._detector.detect_scaled  # type: ignore[attr-defined]
        with torch_threads(self._threads):
            return self._timer.timed("detect", lambda: scaled(images, min_face_size))

    def detect(self, image: np.ndarray) -> list[Detection]:
        with torch_threads(self._threads):
            return self._timer.timed("detect", lambda: self._detector.detect(image))

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        with torch_threads(self._threads):
            return self._timer.timed("detect", lambda: detect_batch(self._detector, images))


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the body with ``threads`` torch intra-op threads, then restore the previous number."""
    previous = torch.get_num_threads()
    if threads is None or threads == previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class ThumbnailSampler:
    """Keeps up to ``count`` evenly spaced small JPEGs of a stream of crops (the first one always).

    Crop ``k`` is kept when ``k`` is a multiple of the current interval; when more than ``count`` are
    held, every other one is dropped and the interval doubles.
    """

    def __init__(self, count: int, size: int) -> None:
        self.count, self.size = count, size
        self.interval = 1
        self.kept: list[tuple[int, bytes]] = []

    def add(self, position: int, crop: np.ndarray) -> None:
        if position % self.interval:
            return
        small = cv2.resize(crop, (self.size, self.size), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(
            ".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85]
        )
        if ok:
            self.kept.append((position, jpeg.tobytes()))
        if len(self.kept) > self.count:
            self.interval *= 2
            self.kept = [(p, j) for p, j in self.kept if p % self.interval == 0]

    def jpegs(self) -> list[bytes]:
        return [jpeg for _, jpeg in self.kept]


class EmbeddingStream:
    """Collects tracked faces and embeds their crops ``batch_size`` at a time, across tracks."""

    def __init__(self, engine: Engine, settings: Settings, timer: StageTimer) -> None:
        self.engine, self.timer = engine, timer
        self.settings = settings
        self.tracks = TrackCollector()
        self.chunks: dict[int, list[np.ndarray]] = {}  # track id -> embeddings (n, D) in arrival order
        self.thumbnails: dict[int, ThumbnailSampler] = {}
        self._pending: list[tuple[int, np.ndarray]] = []  # (track id, crop)
        self.detections = 0

    def add(self, face: TrackedFace) -> None:
        if self.settings.keep_thumbnails:
            sampler = self.thumbnails.get(face.track_id)
            if sampler is None:
                sampler = ThumbnailSampler(self.settings.thumbnails_per_face, self.settings.thumbnail_size)
                self.thumbnails[face.track_id] = sampler
            sampler.add(self.tracks.frame_count(face.track_id), face.crop)
        self.tracks.add(face)
        self._pending.append((face.track_id, face.crop))
        self.detections += 1
        if len(self._pending) >= self.settings.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        crops = np.stack([crop for _, crop in self._pending])  # (B, S, S, 3)
        embeddings = self.timer.timed("embed", lambda: self.engine.embed(crops))  # (B, D)
        for (track_id, _), row in zip(self._pending, embeddings, strict=True):
            self.chunks.setdefault(track_id, []).append(row[None])
        self._pending = []

    def finish(self) -> list[FaceTrack]:
        """The tracks in id order, each with its embeddings and thumbnails."""
        self.flush()
        result = []
        for track in self.tracks.tracks():
            embeddings = np.concatenate(self.chunks[track.track_id]).astype(np.float32, copy=False)  # (N, D)
            sampler = self.thumbnails.get(track.track_id)
            thumbs = tuple(sampler.jpegs()) if sampler is not None else ()
            result.append(replace(track, embeddings=embeddings, thumbnails=thumbs))
        return result


def analyze_video(path: Path, engine: Engine, detector: FaceDetector, settings: Settings) -> VideoResult:
    """Run the whole pipeline on one file; raises :class:`VideoError` for files that cannot be read."""
    timer, start = StageTimer(), time.perf_counter()
    formats = settings.container_formats
    info = timer.timed("decode", lambda: probe_video(path, max_pixels=settings.max_pixels, formats=formats))
    _check_duration(info, settings.max_duration_s)
    stride = choose_stride(info, settings.frame_stride, settings.min_clip_len)
    if stride != settings.frame_stride:
        logger.info(
            "%s: stride %d instead of %d so that the short video yields %d frames",
            path,
            stride,
            settings.frame_stride,
            settings.min_clip_len,
        )
    decoded = decode_frames(path, stride, settings.max_frames, settings.max_pixels, formats)
    frames = _CountingFrames(decoded, timer)
    stream = EmbeddingStream(engine, settings, timer)
    warnings = _track_and_embed(frames, stream, detector, settings, timer)
    warnings += _truncation_warning(info, frames, settings.max_frames)
    tracks = stream.finish()
    video_info = _describe(
        info, stride, settings.frame_stride, frames, settings.max_frames, stream.detections
    )
    verdict = build_verdict(str(path), tracks, engine, settings, stride, timer, video_info)
    timings = {stage: timer.seconds.get(stage, 0.0) for stage in TIMED_STAGES}  # the head's time included
    timings["total"] = time.perf_counter() - start
    return verdict.result(warnings=warnings, timings=timings)


def _track_and_embed(
    frames: _CountingFrames,
    stream: EmbeddingStream,
    detector: FaceDetector,
    settings: Settings,
    timer: StageTimer,
) -> list[str]:
    """Drive decode -> detect -> crop/track -> embed; "crop" is charged the loop time the others did not
    take. A decode error after some frames ends the video early with a warning (returned)."""
    before, loop_start, warnings = dict(timer.seconds), time.perf_counter(), []
    try:
        for face in track_faces(
            frames, TimedDetector(detector, timer, settings.detect_threads), settings.faces
        ):
            stream.add(face)
    except DecodeError as exc:
        if frames.count == 0:
            raise
        warnings.append(f"decoding stopped early ({exc.problem}); the {frames.count} frames before were used")
    inner = sum(timer.seconds.get(k, 0.0) - before.get(k, 0.0) for k in ("decode", "detect", "embed"))
    timer.add("crop", max(0.0, time.perf_counter() - loop_start - inner))
    return warnings


class _CountingFrames:
    """Iterates decoded frames, charging decode time and counting them."""

    def __init__(self, frames: Iterable[Frame], timer: StageTimer) -> None:
        self.count, self.last_index = 0, -1
        self._frames = timer.iterate("decode", frames)

    def __iter__(self) -> Iterator[Frame]:
        for frame in self._frames:
            self.count, self.last_index = self.count + 1, frame.index
            yield frame


def _truncation_warning(info: VideoInfo, frames: _CountingFrames, max_frames: int | None) -> list[str]:
    """A warning when ``max_frames`` stopped decoding before the end of the video."""
    total = info.estimated_frames
    if (
        max_frames is None
        or frames.count < max_frames
        or (total is not None and frames.last_index + 1 >= total)
    ):
        return []
    seen = frames.last_index + 1
    return [f"only the first {seen} frames{_of(total)} were examined (max_frames={max_frames})"]


def _of(total: int | None) -> str:
    return f" of about {total}" if total is not None else ""


def _check_duration(info: VideoInfo, max_duration_s: float | None) -> None:
    duration = info.duration
    if duration is None and info.estimated_frames is not None and info.fps > 0:
        duration = info.estimated_frames / info.fps
    if max_duration_s is not None and duration is not None and duration > max_duration_s:
        raise VideoTooLargeError(
            info.path, f"lasts {duration:.1f} s, more than max_duration_s={max_duration_s:g}"
        )


def _describe(
    info: VideoInfo,
    stride: int,
    desired: int,
    frames: _CountingFrames,
    max_frames: int | None,
    detections: int,
) -> dict[str, Any]:
    return {
        **info.describe(),
        "frames_used": frames.count,
        "last_frame": frames.last_index,
        "stride": stride,
        "model_stride": desired,
        "max_frames_reached": max_frames is not None and frames.count >= max_frames,
        "face_detections": detections,
    }


def failure_result(path: Path | str, exc: VideoError, elapsed_s: float) -> VideoResult:
    """The result for a file that could not be read (status and problem from the exception)."""
    status = exc.status if exc.status is not VideoStatus.OK else VideoStatus.UNDECODABLE
    return VideoResult.failed(str(path), status, exc.problem, timings={"total": elapsed_s})
