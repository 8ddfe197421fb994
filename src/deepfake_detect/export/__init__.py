"""Export a model directory for torch-free runtimes (issue 4, layer 4).

``export_onnx`` writes the extractor and the sequence head as two ONNX graphs (verified against torch
before anything is written); ``OnnxEngine`` runs them with onnxruntime behind the inference ``Engine``
protocol (``Detector.load(onnx_dir, engine="onnx")``). Formats are registered in :data:`EXPORT_FORMATS`.
"""

from deepfake_detect.export.formats import EXPORT_FORMATS, Exporter
from deepfake_detect.export.onnx_engine import OnnxEngine, OnnxModelDir, prepare_frames, read_onnx_dir
from deepfake_detect.export.onnx_export import (
    EXTRACTOR_ONNX,
    HEAD_ONNX,
    ONNX_SECTION,
    OnnxExportError,
    OnnxParity,
    OnnxSection,
    export_onnx,
    verify_onnx,
)

__all__ = [
    "EXPORT_FORMATS",
    "EXTRACTOR_ONNX",
    "HEAD_ONNX",
    "ONNX_SECTION",
    "Exporter",
    "OnnxEngine",
    "OnnxExportError",
    "OnnxModelDir",
    "OnnxParity",
    "OnnxSection",
    "export_onnx",
    "prepare_frames",
    "read_onnx_dir",
    "verify_onnx",
]
