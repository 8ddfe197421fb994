"""Haar cascade backend: OpenCV's bundled frontal-face cascade, fast and CPU-only.

It finds frontal faces only (a face in profile, such as ``skimage.data.camera()``, is missed).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
from cv2 import data as cv2_data

from deepfake_detect.faces.detectors.base import (
    FACE_DETECTORS,
    check_rgb_image,
    downscale,
    shared_default,
    to_detections,
)
from deepfake_detect.types import Detection

logger = logging.getLogger(__name__)

CASCADE_FILE = "haarcascade_frontalface_default.xml"


@FACE_DETECTORS.register("haar")
class HaarDetector:
    """Viola-Jones cascade on a downscaled grey frame.

    The cascade gives no probability. A candidate is kept when more than ``min_neighbors``
    overlapping windows agree, and its score is the normalised neighbour count
    ``n / (n + min_neighbors)`` (in (0.5, 1); for ranking, not a calibrated probability), so the
    config's ``score_threshold`` (meant for MTCNN probabilities) is not applied here.
    """

    name: str  # set by the registry

    def __init__(
        self,
        detect_max_side: int = shared_default("detect_max_side"),
        min_face_size: int = shared_default("min_face_size"),
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
    ) -> None:
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor}")
        if min_neighbors < 1:
            raise ValueError(f"min_neighbors must be >= 1, got {min_neighbors}")
        self.detect_max_side = detect_max_side
        self.min_face_size = min_face_size
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self._cascade: cv2.CascadeClassifier | None = None

    def _load(self) -> cv2.CascadeClassifier:
        if self._cascade is None:
            path = Path(cv2_data.haarcascades) / CASCADE_FILE
            cascade = cv2.CascadeClassifier(str(path))
            if cascade.empty():
                raise RuntimeError(
                    f"OpenCV's Haar cascade {path} is missing or unreadable "
                    "(opencv-python-headless 5.x ships none; install 4.x)"
                )
            self._cascade = cascade
            logger.debug("loaded Haar cascade %s", path)
        return self._cascade

    def detect(self, image: np.ndarray) -> list[Detection]:
        image = check_rgb_image(image)
        cascade = self._load()
        small, fx, fy = downscale(image, self.detect_max_side)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        min_side = max(1, round(self.min_face_size / max(fx, fy)))
        rects, neighbours = cascade.detectMultiScale2(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side)
        )
        if len(rects) == 0:
            return []
        rects_f = np.asarray(rects, dtype=float).reshape(-1, 4)  # (N, 4) x, y, w, h
        corners = rects_f[:, :2]  # (N, 2) x1, y1
        boxes = np.concatenate([corners, corners + rects_f[:, 2:]], axis=1)  # (N, 4) x1, y1, x2, y2
        counts = np.asarray(neighbours, dtype=float).reshape(-1)  # (N,)
        scores = counts / (counts + self.min_neighbors)
        return to_detections(boxes, scores, fx, fy, self.min_face_size)
