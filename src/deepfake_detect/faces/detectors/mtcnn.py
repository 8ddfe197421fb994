"""MTCNN backend (facenet-pytorch 2.5.3; its weights ship inside the wheel)."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from deepfake_detect.faces.detectors.base import (
    FACE_DETECTORS,
    check_rgb_image,
    downscale,
    shared_default,
    to_detections,
)
from deepfake_detect.types import Detection

logger = logging.getLogger(__name__)

# MTCNN's first network looks at 12x12 windows: a smaller minimum face makes it upsample the frame.
_MTCNN_MIN_WINDOW = 12


@FACE_DETECTORS.register("mtcnn")
class MTCNNDetector:
    """Multi-task cascaded CNN face detector, all faces kept, probabilities as scores.

    The frame is downscaled so its longest side is <= ``detect_max_side`` and ``min_face_size``
    (given in full-resolution pixels) is scaled by the same factor; boxes whose longer side is
    below ``min_face_size`` are dropped, and so are those scoring below ``score_threshold``.
    The network is built on the first call to ``detect`` (importing torch and facenet-pytorch
    takes seconds).
    """

    name: str  # set by the registry

    def __init__(
        self,
        detect_max_side: int = shared_default("detect_max_side"),
        min_face_size: int = shared_default("min_face_size"),
        score_threshold: float = shared_default("score_threshold"),
        device: str = shared_default("device"),
    ) -> None:
        self.detect_max_side = detect_max_side
        self.min_face_size = min_face_size
        self.score_threshold = score_threshold
        self.device = device
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import torch
                from facenet_pytorch import MTCNN

                self._model = MTCNN(keep_all=True, select_largest=False, device=torch.device(self.device))
            logger.debug("loaded MTCNN on %s", self.device)
        return self._model

    def detect(self, image: np.ndarray) -> list[Detection]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """``detect`` of each image, in one batched pass of the networks when all have the same size;
        images of different sizes are detected one at a time. (What batches gain on a GPU:
        benchmarks/RESULTS.md, "Figures behind the code".)"""
        if len({check_rgb_image(image).shape for image in images}) > 1:
            return [self.detect_batch([image])[0] for image in images]
        smalls, factors = [], []
        for image in images:
            small, fx, fy = downscale(image, self.detect_max_side)
            smalls.append(np.ascontiguousarray(small))
            factors.append((fx, fy))
        fx, fy = factors[0]
        return self._run(smalls, max(_MTCNN_MIN_WINDOW, round(self.min_face_size / max(fx, fy))), fx, fy)

    def detect_scaled(self, images: list[np.ndarray], min_face_size: float) -> list[list[Detection]]:
        """Faces of at least ``min_face_size`` pixels of the images as given (no downscaling; the pyramid
        starts at that face size), boxes in the images' own pixels; all images must have the same size.
        Used by the track-guided scan (``faces.guided``) on small regions around known faces."""
        if len({check_rgb_image(image).shape for image in images}) > 1:
            raise ValueError("detect_scaled needs images of one size")
        smalls = [np.ascontiguousarray(image) for image in images]
        return self._run(smalls, max(_MTCNN_MIN_WINDOW, min_face_size), 1.0, 1.0, min_face_size)

    def _run(
        self, smalls: list[np.ndarray], window: float, fx: float, fy: float, min_keep: float | None = None
    ) -> list[list[Detection]]:
        """MTCNN on same-size ``smalls`` with the pyramid starting at ``window`` px; boxes scaled by (fx, fy)
        and kept from ``min_keep`` full-resolution px (default: ``min_face_size``)."""
        model = self._load()
        model.min_face_size = window
        if min(smalls[0].shape[:2]) < window:  # no face fits; MTCNN itself would raise here
            return [[] for _ in smalls]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            boxes, probs = model.detect(np.stack(smalls) if len(smalls) > 1 else smalls[0])
        if len(smalls) == 1:
            boxes, probs = [boxes], [probs]
        keep = self.min_face_size if min_keep is None else min_keep
        return [self._kept(b, p, fx, fy, keep) for b, p in zip(boxes, probs, strict=True)]

    def _kept(self, boxes: object, probs: object, fx: float, fy: float, min_keep: float) -> list[Detection]:
        if boxes is None:
            return []
        # numpy 2: facenet-pytorch returns object arrays
        boxes_f = np.asarray(boxes).astype(float).reshape(-1, 4)  # (N, 4)
        probs_f = np.asarray(probs).astype(float).reshape(-1)  # (N,)
        keep = probs_f >= self.score_threshold
        return to_detections(boxes_f[keep], probs_f[keep], fx, fy, min_keep)
