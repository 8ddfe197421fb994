"""Inference (layer 4): the :class:`Detector` facade, from a video file to a verdict per video and face.

Modules: ``options`` (DetectOptions), ``results`` (VideoResult, FaceResult, TimelinePoint),
``engine`` (Engine protocol, TorchEngine, the ENGINES registry), ``analyze`` (the streaming
one-video task, ``analyze_video``), ``scoring``/``verdict`` (windows and aggregation),
``detector`` (Detector), ``html_report`` (HTML report of detect results) and ``last_model`` (the demo's
last model).
Names are imported on first use (PEP 562): ``detect``'s parent process never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepfake_detect.inference.detector import Detector
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
    from deepfake_detect.inference.workers import detect_in_worker, worker_detector

_HOMES = {
    "detector": ("Detector",),
    "workers": ("detect_in_worker", "worker_detector"),
    "engine": ("ENGINES", "Engine", "TorchEngine", "bf16_supported", "create_engine"),
    "last_model": ("last_model_path", "last_model_pointer", "record_last_model"),
    "options": ("DetectOptions",),
    "results": ("ANSWERED_STATUSES", "JSON_SCHEMA_DOC", "FaceResult", "TimelinePoint", "VideoResult"),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


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
