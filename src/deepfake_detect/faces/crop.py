"""Square face crops with context margin from the full-resolution frame (SPEC §2 'Frames and faces')."""

from __future__ import annotations

import math

import cv2
import numpy as np

from deepfake_detect.faces.detectors.base import check_rgb_image
from deepfake_detect.types import BBox


def square_crop_bounds(box: BBox, margin: float) -> tuple[int, int, int]:
    """Integer (x, y, side) of the square of side max(w, h) * (1 + margin) centred on ``box``."""
    square = box.square(margin)
    side = max(1, round(square.width))
    x = math.floor(square.center[0] - side / 2.0 + 0.5)
    y = math.floor(square.center[1] - side / 2.0 + 0.5)
    return x, y, side


def crop_face(image: np.ndarray, box: BBox, size: int = 256, margin: float = 0.2) -> np.ndarray:
    """Cut the square around ``box`` (plus ``margin``) out of ``image`` and resize it to (size, size, 3).

    Parts of the square outside the frame are zeros. Shrinking uses area interpolation,
    enlarging bilinear; a square already of ``size`` is returned unresampled.
    """
    image = check_rgb_image(image)
    if size < 1:
        raise ValueError(f"crop size must be >= 1, got {size}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    x, y, side = square_crop_bounds(box, margin)
    height, width = image.shape[:2]
    canvas = np.zeros((side, side, 3), dtype=np.uint8)  # (side, side, 3)
    x1, y1 = max(x, 0), max(y, 0)
    x2, y2 = min(x + side, width), min(y + side, height)
    if x2 > x1 and y2 > y1:
        canvas[y1 - y : y2 - y, x1 - x : x2 - x] = image[y1:y2, x1:x2]
    if side == size:
        return canvas
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(canvas, (size, size), interpolation=interpolation)
