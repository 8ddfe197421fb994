"""Face detector backends behind one protocol; importing this package registers them all
(each backend module registers itself when imported)."""

from deepfake_detect.faces.detectors.base import (
    FACE_DETECTORS,
    FaceDetector,
    FaceDetectorFactory,
    create_face_detector,
    detect_batch,
)
from deepfake_detect.faces.detectors.haar import HaarDetector
from deepfake_detect.faces.detectors.mtcnn import MTCNNDetector

__all__ = [
    "FACE_DETECTORS",
    "FaceDetector",
    "FaceDetectorFactory",
    "HaarDetector",
    "MTCNNDetector",
    "create_face_detector",
    "detect_batch",
]
