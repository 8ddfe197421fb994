"""Streaming detect -> crop -> track over the frames of one video, and the faces gathered into tracks."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from deepfake_detect.config import FaceConfig
from deepfake_detect.faces.crop import crop_face
from deepfake_detect.faces.detectors.base import FaceDetector, detect_batch
from deepfake_detect.faces.guided import GuidedScan
from deepfake_detect.faces.tracking import FaceTracker
from deepfake_detect.types import BBox, Detection, FaceTrack, Frame, TrackedFace

logger = logging.getLogger(__name__)


def track_faces(frames: Iterable[Frame], detector: FaceDetector, config: FaceConfig) -> Iterator[TrackedFace]:
    """Detect, crop and track the faces of each frame, yielding them in frame order.

    With ``config.detect_every`` = k > 1 the detector runs on every k-th frame (and on the last one);
    a face found in two consecutive detected frames and paired by the tracker gets, in each frame
    between them, the box interpolated linearly between its two boxes (score: the lower of the two). A
    face seen in only one of them leaves the frames between as a gap in its track. ``detect_batch`` of the
    frames to detect in go to the detector in one call. Only the frames not yet yielded (fewer than
    k x detect_batch) and each track's last (small) crop are held, so memory does not grow with the
    video's length. A frame without faces yields nothing (a gap in every track). If reading the frames
    raises, the faces of the frames already read are yielded first. With ``config.tracked`` each keyframe
    is detected in around the faces of the keyframe before (``faces.guided``), one keyframe at a time.
    """
    tracker = FaceTracker(mse_threshold=config.mse_threshold, compare_size=config.compare_size)
    if config.detect_every == 1 and not config.tracked:
        for frame in frames:
            yield from _detect_in(frame, detector, tracker, config)
    else:
        yield from _track_keyframes(frames, detector, tracker, config)
    logger.debug("tracked faces into %d tracks", tracker.num_tracks)


def _detect_in(
    frame: Frame, detector: FaceDetector, tracker: FaceTracker, config: FaceConfig
) -> list[TrackedFace]:
    """The faces the detector finds in ``frame``, cropped and given their track ids."""
    return _faces_in(frame, detector.detect(frame.image), tracker, config)


def _faces_in(
    frame: Frame, detections: list[Detection], tracker: FaceTracker, config: FaceConfig
) -> list[TrackedFace]:
    crops = [crop_face(frame.image, d.box, config.crop_size, config.margin) for d in detections]
    track_ids = tracker.update(frame.index, crops)
    return [
        TrackedFace(frame.index, frame.timestamp, track_id, detection, crop)
        for detection, crop, track_id in zip(detections, crops, track_ids, strict=True)
    ]


@dataclass
class _Keyframes:
    """State of keyframe tracking: frames read but not yielded, and the last detected frame's faces."""

    pending: list[tuple[Frame, bool]]  # (frame, detect in it?) in reading order
    scan: GuidedScan
    previous: tuple[int, dict[int, Detection]] | None = None  # last detected frame: index, track -> box

    def known(self) -> list[Detection]:
        """The faces of the last detected frame."""
        return [] if self.previous is None else list(self.previous[1].values())

    @property
    def keys(self) -> int:
        return sum(key for _, key in self.pending)


def _track_keyframes(
    frames: Iterable[Frame], detector: FaceDetector, tracker: FaceTracker, config: FaceConfig
) -> Iterator[TrackedFace]:
    """``track_faces`` with detection on every ``detect_every``-th frame (see there).

    Frames wait in ``pending`` until ``detect_batch`` of them are to be detected in (one batched call),
    then go out in order: each detected frame preceded by the frames between it and the one before.
    """
    state = _Keyframes(pending=[], scan=GuidedScan(detector, config))
    try:
        for position, frame in enumerate(frames):
            key = position % config.detect_every == 0
            state.pending.append((frame, key))
            if key and state.keys >= config.detect_batch:
                yield from _flush(state, detector, tracker, config)
    except Exception:  # decoding broke off: the frames already read still count, then the error goes on
        yield from _flush(state, detector, tracker, config, last=True)
        raise
    yield from _flush(state, detector, tracker, config, last=True)
    if config.tracked:
        logger.debug("keyframes: %d full scans, %d guided", state.scan.full_scans, state.scan.guided_scans)


def _flush(
    state: _Keyframes, detector: FaceDetector, tracker: FaceTracker, config: FaceConfig, last: bool = False
) -> Iterator[TrackedFace]:
    """Detect in the pending keyframes (and, at the ``last`` flush, in the stream's last frame too)."""
    if not state.pending:
        return
    if last:  # the stream ended between two detected frames: detect in its last frame too
        state.pending[-1] = (state.pending[-1][0], True)
    pending, state.pending = state.pending, []
    keys = [] if state.scan.enabled else [frame for frame, key in pending if key]
    found = dict(zip((f.index for f in keys), detect_batch(detector, [f.image for f in keys]), strict=True))
    between: list[Frame] = []
    for frame, key in pending:
        if not key:
            between.append(frame)
            continue
        detections = found.get(frame.index)
        if detections is None:  # the guided scan: one keyframe at a time, each after the one before
            detections = state.scan.detect(frame.image, state.known())
        faces = _faces_in(frame, detections, tracker, config)
        yield from _interpolated(between, state.previous, faces, config)
        yield from faces
        state.previous, between = (frame.index, {f.track_id: f.detection for f in faces}), []


def _interpolated(
    between: list[Frame],
    previous: tuple[int, dict[int, Detection]] | None,
    found: list[TrackedFace],
    config: FaceConfig,
) -> Iterator[TrackedFace]:
    """Faces of the frames ``between`` two detected frames, for the tracks present in both."""
    if previous is None or not between:
        return
    start, before = previous
    after = {f.track_id: f for f in found}
    shared = sorted(set(before) & set(after))
    end = after[shared[0]].frame_index if shared else start
    for frame in between:
        t = (frame.index - start) / (end - start) if end > start else 0.0
        for track_id in shared:
            a, b = before[track_id], after[track_id].detection
            box = BBox(*(u + t * (v - u) for u, v in zip(_corners(a.box), _corners(b.box), strict=True)))
            crop = crop_face(frame.image, box, config.crop_size, config.margin)
            detection = Detection(box, min(a.score, b.score))
            yield TrackedFace(frame.index, frame.timestamp, track_id, detection, crop)


def _corners(box: BBox) -> tuple[float, float, float, float]:
    return (box.x1, box.y1, box.x2, box.y2)


class TrackCollector:
    """Gathers the faces ``track_faces`` yields into one :class:`FaceTrack` per track id."""

    def __init__(self) -> None:
        self._frames: dict[int, list[int]] = {}
        self._times: dict[int, list[float]] = {}

    def add(self, face: TrackedFace) -> None:
        self._frames.setdefault(face.track_id, []).append(face.frame_index)
        self._times.setdefault(face.track_id, []).append(face.timestamp)

    def __len__(self) -> int:
        return len(self._frames)

    def frame_count(self, track_id: int) -> int:
        """How many faces of track ``track_id`` were added so far."""
        return len(self._frames.get(track_id, ()))

    def tracks(self) -> list[FaceTrack]:
        """The tracks in increasing id order."""
        return [
            FaceTrack(track_id, tuple(self._frames[track_id]), tuple(self._times[track_id]))
            for track_id in sorted(self._frames)
        ]
