"""Streaming detect -> crop -> track over the frames of one video."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from deepfake_detect.config import FaceConfig
from deepfake_detect.faces.crop import crop_face
from deepfake_detect.faces.detectors.base import FaceDetector
from deepfake_detect.faces.tracking import FaceTracker
from deepfake_detect.types import Detection, Frame

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackedFace:
    """One face in one frame: its detection (full-resolution box), track id and (S, S, 3) uint8 crop."""

    frame_index: int
    timestamp: float
    track_id: int
    detection: Detection
    crop: np.ndarray


def track_faces(frames: Iterable[Frame], detector: FaceDetector, config: FaceConfig) -> Iterator[TrackedFace]:
    """Detect, crop and track the faces of each frame, yielding them as soon as the frame is done.

    Only one frame and each track's last (small) crop are held at a time, so memory does not
    grow with the video's length. A frame without faces yields nothing (a gap in every track).
    """
    tracker = FaceTracker(mse_threshold=config.mse_threshold, compare_size=config.compare_size)
    for frame in frames:
        detections = detector.detect(frame.image)
        crops = [crop_face(frame.image, d.box, config.crop_size, config.margin) for d in detections]
        track_ids = tracker.update(frame.index, crops)
        for detection, crop, track_id in zip(detections, crops, track_ids, strict=True):
            yield TrackedFace(frame.index, frame.timestamp, track_id, detection, crop)
    logger.debug("tracked faces into %d tracks", tracker.num_tracks)
