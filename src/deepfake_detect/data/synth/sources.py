"""Real face photographs shipped with scikit-image and their face geometry (SPEC §6, §8).

Bases (the faces the scenes are built around): ``skimage.data.astronaut()`` (colour, frontal),
matplotlib's sample photo ``grace_hopper.jpg`` (colour, frontal) and ``skimage.data.camera()`` (grey,
near profile). Donors (the identities pasted over the inner face): the two frontal photos (never onto
themselves) and the first 100 images of ``skimage.data.lfw_subset()`` (25x25 grey faces, upscaled 4x
once; blurrier than the target, the same for real and fake videos).

Landmarks were measured once with facenet-pytorch's MTCNN (bundled weights) on the unmodified photos; for
LFW they are the mean over the 98 faces MTCNN found when upscaled to 100x100 (the images are aligned
crops, so one geometry fits all within a few pixels). Nothing is detected at generation time.
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass

import cv2
import numpy as np

LFW_FACES = 100
# The LFW faces used as donors: all but the two that MTCNN does not find at 100x100 (not frontal enough).
LFW_DONORS = tuple(i for i in range(LFW_FACES) if i not in (9, 13))
_LFW_SCALE = 4
# (left eye, right eye, mouth centre) in pixels of the image, x then y.
_ASTRONAUT_POINTS = ((205.0, 101.7), (246.8, 103.7), (223.5, 140.6))
_ASTRONAUT_BOX = (181.1, 62.2, 267.7, 172.1)
_HOPPER_POINTS = ((221.7, 192.2), (309.8, 186.1), (269.6, 277.8))
_HOPPER_BOX = (174.4, 119.6, 355.6, 340.5)
_CAMERA_POINTS = ((234.4, 147.2), (252.3, 149.6), (237.4, 181.2))
_CAMERA_BOX = (199.2, 118.9, 254.3, 192.3)
_LFW_POINTS_100 = ((26.3, 36.1), (61.2, 34.7), (45.2, 73.5))
# Inner-face ellipse in "eye-mouth" coordinates: u runs from the left eye (-0.5) to the right eye (+0.5),
# v from the eye line (0) to the mouth (1).
_MASK_CENTER_V = 0.42
_MASK_RADII = (0.82, 0.92)


@dataclass(frozen=True)
class FacePhoto:
    """A face image (float32 RGB 0..255, read-only) with its left eye, right eye and mouth centre."""

    name: str
    image: np.ndarray  # (H, W, 3) float32
    points: np.ndarray  # (3, 2) float32, x y
    box: tuple[float, float, float, float]  # MTCNN-style face box x1 y1 x2 y2

    @property
    def face_height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def face_center(self) -> np.ndarray:
        x1, y1, x2, y2 = self.box
        return np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0], dtype=np.float64)

    def flipped(self) -> FacePhoto:
        """Mirror left-right (the eyes swap roles so that 'left eye' stays on the left)."""
        width = self.image.shape[1]
        image = _read_only(self.image[:, ::-1])
        pts = self.points.copy()
        pts[:, 0] = width - 1 - pts[:, 0]
        pts[[0, 1]] = pts[[1, 0]]
        x1, y1, x2, y2 = self.box
        return FacePhoto(
            f"{self.name}-flip", image, _read_only(pts), (width - 1 - x2, y1, width - 1 - x1, y2)
        )


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


def _photo(
    name: str, image: np.ndarray, points: tuple[tuple[float, float], ...], box: tuple[float, ...]
) -> FacePhoto:
    rgb = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    x1, y1, x2, y2 = box
    return FacePhoto(
        name, _read_only(rgb.astype(np.float32)), _read_only(np.array(points, np.float32)), (x1, y1, x2, y2)
    )


def _grace_hopper() -> np.ndarray:
    from PIL import Image

    path = importlib.resources.files("matplotlib") / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    with importlib.resources.as_file(path) as file, Image.open(file) as image:
        return np.asarray(image.convert("RGB"))


@functools.cache
def base_photos() -> tuple[FacePhoto, ...]:
    """The base photographs: astronaut and Grace Hopper (colour, frontal), camera (grey as RGB, profile)."""
    from skimage import data

    return (
        _photo("astronaut", data.astronaut(), _ASTRONAUT_POINTS, _ASTRONAUT_BOX),
        _photo("hopper", _grace_hopper(), _HOPPER_POINTS, _HOPPER_BOX),
        _photo("camera", data.camera(), _CAMERA_POINTS, _CAMERA_BOX),
    )


FRONTAL_BASES = (0, 1)  # indices into base_photos() that make good donors


@functools.cache
def lfw_donor(index: int) -> FacePhoto:
    """LFW face ``index`` (0..99) upscaled to 100x100 (bicubic, then a slight blur against blockiness)."""
    if not 0 <= index < LFW_FACES:
        raise ValueError(f"LFW donor index must be in 0..{LFW_FACES - 1}, got {index}")
    from skimage import data

    small = (data.lfw_subset()[index] * 255.0).astype(np.float32)  # (25, 25) grey
    side = small.shape[0] * _LFW_SCALE
    big = cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)
    big = cv2.GaussianBlur(big, (0, 0), 1.2)
    return _photo(f"lfw-{index:03d}", big, _LFW_POINTS_100, (6.0, 0.0, 82.0, 96.0))


def ellipse_matrix(points: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """3x3 affine taking the unit disk onto the inner-face ellipse (pixels) of a face with these points.

    ``scale`` grows (> 1) or shrinks (< 1) the ellipse about its centre.
    """
    eye_l, eye_r, mouth = points.astype(np.float64)
    mid = (eye_l + eye_r) / 2.0
    basis = np.stack([eye_r - eye_l, mouth - mid], axis=1)  # (2, 2): columns = u and v directions
    linear = basis @ np.diag([_MASK_RADII[0] * scale, _MASK_RADII[1] * scale])
    offset = mid + basis @ np.array([0.0, _MASK_CENTER_V])
    return np.vstack([np.hstack([linear, offset[:, None]]), [0.0, 0.0, 1.0]])


def inner_face_mask(shape: tuple[int, int], points: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Binary float32 mask (H, W) of the inner face (brows to below the mouth) given eyes and mouth.

    ``scale`` < 1 shrinks the ellipse about its centre (the central face, for colour statistics).
    """
    inv = np.linalg.inv(ellipse_matrix(points, scale))
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    x = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    y = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    return (x * x + y * y <= 1.0).astype(np.float32)


def masked_stats(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation (3,) of ``image`` where ``mask`` > 0.5."""
    pixels = image[mask > 0.5].astype(np.float64)  # (N, 3)
    if pixels.shape[0] < 4:
        raise ValueError("face mask covers fewer than 4 pixels")
    return pixels.mean(axis=0), np.maximum(pixels.std(axis=0), 1.0)
