"""Inference (layer 4): the :class:`Detector` facade, from a video file to a verdict per video and face.

Modules: ``options`` (DetectOptions), ``results`` (VideoResult, FaceResult, TimelinePoint),
``engine`` (Engine protocol, TorchEngine, the ENGINES registry), ``pipeline`` (the streaming
video pipeline), ``scoring``/``verdict`` (windows and aggregation), ``detector`` (Detector),
``report`` (HTML report) and ``last_model`` (the demo's last model).
"""

from deepfake_detect.inference.detector import Detector, detect_in_worker, worker_detector
from deepfake_detect.inference.engine import ENGINES, Engine, TorchEngine, bf16_supported, create_engine
from deepfake_detect.inference.last_model import last_model_path, last_model_pointer, record_last_model
from deepfake_detect.inference.options import DetectOptions
from deepfake_detect.inference.results import (
    ANSWERED_STATUSES,
    JSON_SCHEMA_DOC,
    FaceResult,
    TimelinePoint,
    VideoResult,
)

__all__ = [
    "ANSWERED_STATUSES",
    "ENGINES",
    "JSON_SCHEMA_DOC",
    "DetectOptions",
    "Detector",
    "Engine",
    "FaceResult",
    "TimelinePoint",
    "TorchEngine",
    "VideoResult",
    "bf16_supported",
    "create_engine",
    "detect_in_worker",
    "last_model_path",
    "last_model_pointer",
    "record_last_model",
    "worker_detector",
]
