"""The :class:`Detector` for frame models (imported published detectors, SPEC §9).

``Detector.load`` returns a :class:`FrameDetector` for a ``kind: frame`` directory, so ``detect``,
``detect_many`` (isolated workers), the CLI, the report and the service use it unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_detect.faces.recipe_detector import RecipeMTCNN
from deepfake_detect.inference.detector import Detector
from deepfake_detect.inference.frame_pipeline import analyze_frame_video
from deepfake_detect.inference.frame_precision import precision_checks, precision_label
from deepfake_detect.inference.model_card import frame_model_info
from deepfake_detect.inference.options import DetectOptions
from deepfake_detect.inference.results import VideoResult
from deepfake_detect.models.dir_config import ONNX_SECTION
from deepfake_detect.models.frame_dir import LoadedFrameModel, load_frame_model_dir

__all__ = ["FrameDetector"]

logger = logging.getLogger(__name__)

FRAME_BATCH = 16  # crops per forward pass at most (bounds the activations held at once)


class FrameDetector(Detector):
    """Verdicts of a frame model with its recipe (frames, detector, crops, rule) on ``device``; each
    member in bf16 + channels-last where :mod:`~.frame_precision` finds it native and within 0.01 of
    fp32 (``options.precision``: "auto", "bf16" or "32"), else fp32."""

    def __init__(
        self,
        model: LoadedFrameModel,
        options: DetectOptions | None = None,
        *,
        model_dir: Path | str | None = None,
        device: str = "cpu",
    ) -> None:
        self.model = model
        self.options = options or DetectOptions()
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.engine_name = "torch"
        self.device = device
        config = model.config
        self.threshold = self.options.threshold if self.options.threshold is not None else config.threshold
        spec = config.recipe.detector
        self.recipe_detector = RecipeMTCNN(spec.scale, spec.thresholds, spec.min_face_size, device)

    @classmethod
    def load_frame(
        cls,
        model_dir: Path | str,
        *,
        engine: str = "torch",
        device: str = "cpu",
        options: DetectOptions | None = None,
    ) -> FrameDetector:
        """``engine``: "torch" (the members' safetensors) or "onnx" (the graphs ``export --format onnx``
        wrote, run by onnxruntime on the CPU with torch's thread count)."""
        if engine == "onnx":
            import torch

            from deepfake_detect.export.onnx_frame import load_onnx_frame_model  # onnxruntime only if asked

            if device != "cpu":
                logger.warning("the onnx engine runs on the CPU; ignoring device=%s", device)
            model = load_onnx_frame_model(model_dir, threads=torch.get_num_threads())
            detector = cls(model, options, model_dir=model_dir, device="cpu")
            detector.engine_name = "onnx"
            return detector
        if engine != "torch":
            raise ValueError(f"frame models run with the torch or onnx engine (got {engine!r})")
        model = load_frame_model_dir(model_dir, device=device)
        if device == "cpu" and ONNX_SECTION in model.config.extra:
            logger.info("%s has an ONNX export: --engine onnx runs it faster on a CPU", model_dir)
        return cls(model, options, model_dir=model_dir, device=device)

    def _analyze(self, path: Path) -> VideoResult:
        return analyze_frame_video(
            path,
            self.model,
            self.recipe_detector,
            threshold=self.threshold,
            max_pixels=self.options.max_pixels,
            formats=self.options.container_formats,
            device=self.device,
            precision=self.options.precision,
            channels_last=self.options.channels_last,
            batch_size=min(self.options.batch_size, FRAME_BATCH),
        )

    def warm_up(self) -> None:
        self.recipe_detector.detect(np.zeros((64, 64, 3), dtype=np.uint8))

    def model_info(self) -> dict[str, Any]:
        checks = precision_checks(self.model.members)
        return frame_model_info(
            self.model.config,
            self.options,
            path=self.model_dir,
            engine=self.engine_name,
            device=self.device,
            precision=precision_label(checks, self.options.precision),
            checks=checks,
        )
