"""Crop rules of published frame classifiers (SPEC §9): a face box in a frame -> the network's input crop.

Each rule is ``fn(frame (H, W, 3) uint8, box (x1, y1, x2, y2) in full-frame pixels, size) -> (size, size, 3)
uint8 or None`` (None: the box leaves nothing of the frame) in :data:`CROP_RULES`:

- ``isotropic-pad`` (the DFDC winner): integer box, padded by h // 3 and w // 3 on each side and clipped
  at the frame; the longer side resized to ``size`` keeping the aspect ratio (INTER_AREA down,
  INTER_CUBIC up), pasted into a zero image at ((size - w) // 2, (size - h) // 2).
- ``margin-resize`` (Self-Blended Images, test phase): margin w / 8 and h / 8 on each side, int
  coordinates with +1 on the far side, clipped; plain (bilinear) resize to ``size`` x ``size``.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from deepfake_detect.registry import Registry

__all__ = [
    "CROP_RULES",
    "CropRule",
    "isotropic_resize",
    "margin_box",
    "padded_box",
    "paste_centred",
]

Box = tuple[float, float, float, float]
CropRule = Callable[[np.ndarray, Box, int], "np.ndarray | None"]
CROP_RULES: Registry[CropRule] = Registry("crop rule")


def padded_box(box: Box, height: int, width: int) -> tuple[int, int, int, int]:
    """The winner's crop window (y0, y1, x0, x1): int box, + h // 3 and w // 3 per side, clipped."""
    x1, y1, x2, y2 = (int(v) for v in box)
    w, h = x2 - x1, y2 - y1
    pad_h, pad_w = h // 3, w // 3
    return max(y1 - pad_h, 0), min(y2 + pad_h, height), max(x1 - pad_w, 0), min(x2 + pad_w, width)


def margin_box(box: Box, height: int, width: int, fraction: float = 1 / 8) -> tuple[int, int, int, int]:
    """SBI's test-phase window (y0, y1, x0, x1): margins w * fraction, h * fraction, +1 on the far side."""
    x1, y1, x2, y2 = box
    mw, mh = (x2 - x1) * fraction, (y2 - y1) * fraction
    y0, x0 = max(0, int(y1 - mh)), max(0, int(x1 - mw))
    return y0, min(height, int(y2 + mh) + 1), x0, min(width, int(x2 + mw) + 1)


def isotropic_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Longer side to ``size``, aspect kept (INTER_CUBIC when enlarging, INTER_AREA when shrinking)."""
    h, w = image.shape[:2]
    if max(w, h) == size:
        return image
    scale = size / max(w, h)
    new_w, new_h = (size, h * scale) if w > h else (w * scale, size)
    interpolation = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    return cv2.resize(image, (int(new_w), int(new_h)), interpolation=interpolation)


def paste_centred(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` (at most ``size`` each way) in a zero ``size`` x ``size`` image at the centre (floor)."""
    image = image[:size, :size]
    out = np.zeros((size, size, 3), dtype=np.uint8)
    y0, x0 = (size - image.shape[0]) // 2, (size - image.shape[1]) // 2
    out[y0 : y0 + image.shape[0], x0 : x0 + image.shape[1]] = image
    return out


@CROP_RULES.register("isotropic-pad")
def isotropic_pad(frame: np.ndarray, box: Box, size: int) -> np.ndarray | None:
    y0, y1, x0, x1 = padded_box(box, *frame.shape[:2])
    if y1 <= y0 or x1 <= x0:
        return None
    return paste_centred(isotropic_resize(frame[y0:y1, x0:x1], size), size)


@CROP_RULES.register("margin-resize")
def margin_resize(frame: np.ndarray, box: Box, size: int) -> np.ndarray | None:
    y0, y1, x0, x1 = margin_box(box, *frame.shape[:2])
    if y1 <= y0 or x1 <= x0:
        return None
    return cv2.resize(np.ascontiguousarray(frame[y0:y1, x0:x1]), (size, size))
