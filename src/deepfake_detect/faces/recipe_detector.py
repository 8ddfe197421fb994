"""Face detection as a published recipe does it (SPEC §9): facenet-pytorch MTCNN with the recipe's
thresholds on the frame resized with PIL (``Image.resize`` with its default filter, as the DFDC winner's
``FaceExtractor`` does), every face kept, boxes mapped back to full-frame pixels (not clipped)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["RecipeFace", "RecipeMTCNN"]

RecipeFace = tuple[tuple[float, float, float, float], float]  # (x1, y1, x2, y2) full-frame, score


class RecipeMTCNN:
    """``detect(frame) -> [(box, score), ...]`` in MTCNN's own order (largest first)."""

    def __init__(
        self,
        scale: float = 0.5,
        thresholds: tuple[float, float, float] = (0.7, 0.8, 0.8),
        min_face_size: int = 20,
        device: str = "cpu",
    ) -> None:
        self.scale = scale
        self.thresholds = thresholds
        self.min_face_size = min_face_size
        self.device = device
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            import torch
            from facenet_pytorch import MTCNN

            self._model = MTCNN(
                margin=0,
                thresholds=list(self.thresholds),
                min_face_size=self.min_face_size,
                device=torch.device(self.device),
            )
        return self._model

    def resized(self, frame: np.ndarray) -> Image.Image:
        """The image the detector sees: ``int(side * scale)`` per side (``side // 2`` at half size)."""
        image = Image.fromarray(frame)
        if self.scale == 1.0:
            return image
        return image.resize(size=[int(s * self.scale) for s in image.size])

    def detect(self, frame: np.ndarray) -> list[RecipeFace]:
        small = self.resized(frame)
        if min(small.size) < self.min_face_size:
            return []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            boxes, probs = self._load().detect(small, landmarks=False)
        if boxes is None:
            return []
        boxes_f = np.asarray(boxes).astype(float).reshape(-1, 4) / self.scale  # (N, 4) numpy 2: object arrays
        probs_f = np.asarray(probs).astype(float).reshape(-1)
        return [
            ((float(b[0]), float(b[1]), float(b[2]), float(b[3])), float(p))
            for b, p in zip(boxes_f, probs_f, strict=True)
        ]
