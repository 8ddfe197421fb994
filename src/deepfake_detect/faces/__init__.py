"""Faces (SPEC §3, layer 2): detector protocol and backends, cropping, tracking, two-pointer segmentation."""

from deepfake_detect.faces.crop import crop_face, square_crop_bounds
from deepfake_detect.faces.detectors import (
    FACE_DETECTORS,
    FaceDetector,
    FaceDetectorFactory,
    HaarDetector,
    MTCNNDetector,
    create_face_detector,
    detect_batch,
)
from deepfake_detect.faces.face_tracks import TrackCollector, track_faces
from deepfake_detect.faces.segment import constant_interval_runs, split_into_clips
from deepfake_detect.faces.tracking import FaceTracker, standardise
from deepfake_detect.types import TrackedFace

__all__ = [
    "FACE_DETECTORS",
    "FaceDetector",
    "FaceDetectorFactory",
    "FaceTracker",
    "HaarDetector",
    "MTCNNDetector",
    "TrackCollector",
    "TrackedFace",
    "constant_interval_runs",
    "create_face_detector",
    "crop_face",
    "detect_batch",
    "split_into_clips",
    "square_crop_bounds",
    "standardise",
    "track_faces",
]
