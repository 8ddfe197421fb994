"""The face detector protocol, its registry and helpers shared by the backends (SPEC §3)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from deepfake_detect.config import FaceConfig
from deepfake_detect.registry import Registry
from deepfake_detect.types import BBox, Detection


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces in one full-resolution frame.

    ``detect`` takes a uint8 RGB image (H, W, 3) and returns detections whose boxes are in that
    image's pixel coordinates (a backend may work on a downscaled copy internally), ordered by
    decreasing score. Boxes may reach slightly beyond the frame edges.
    """

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...


logger = logging.getLogger(__name__)
_WARNED_OLD_BATCH: set[str] = set()  # backends already warned about their pre-rename ``detect_many``

FaceDetectorFactory = Callable[..., FaceDetector]
# Every module of this package is imported on the first lookup, so a backend's module registers itself.
FACE_DETECTORS: Registry[FaceDetectorFactory] = Registry(
    "face detector", package="deepfake_detect.faces.detectors"
)

# The FaceConfig fields given to every backend whose constructor names them (their defaults: FaceConfig's).
SHARED_SETTINGS = ("detect_max_side", "min_face_size", "score_threshold", "device")


def shared_default(field: str) -> Any:
    """FaceConfig's default of a shared setting, for a backend constructor's signature (written once)."""
    return FaceConfig.model_fields[field].default


def detect_batch(detector: FaceDetector, images: list[np.ndarray]) -> list[list[Detection]]:
    """``detector.detect`` of each image; one batched call where the backend has ``detect_batch``.

    (Many frames of one video, for the face detector; ``Detector.detect_many`` in ``inference`` is many
    videos.) A backend written before the rename that offers ``detect_many`` instead is still batched,
    with a logging warning."""
    batched = getattr(detector, "detect_batch", None)
    if batched is None and callable(old := getattr(detector, "detect_many", None)):
        if detector.name not in _WARNED_OLD_BATCH:
            _WARNED_OLD_BATCH.add(detector.name)
            logger.warning("face detector %r: detect_many is deprecated; name it detect_batch", detector.name)
        batched = old
    if batched is not None and len(images) > 1:
        return list(batched(images))
    return [detector.detect(image) for image in images]


def supports_scaled(detector: FaceDetector) -> bool:
    """Whether ``detector`` offers ``detect_scaled(images, min_face_size)`` (faces from a given size on,
    in images taken as they are): what the track-guided scan needs (MTCNN has it, Haar does not)."""
    return callable(getattr(detector, "detect_scaled", None))


def detector_kwargs(config: FaceConfig) -> dict[str, Any]:
    """The constructor kwargs of ``config.detector``: the shared settings it names, then
    ``config.detector_options``. An option it does not take raises
    :class:`~deepfake_detect.registry.UnknownOptionError` naming those it takes."""
    accepted = FACE_DETECTORS.options(config.detector)
    shared = [key for key in config.detector_options if key in SHARED_SETTINGS]
    if shared:
        raise ValueError(
            f"faces.detector_options.{shared[0]}: {shared[0]!r} is a shared setting; set faces.{shared[0]}"
        )
    FACE_DETECTORS.check_options(config.detector, config.detector_options, skip=SHARED_SETTINGS)
    settings = {key: getattr(config, key) for key in SHARED_SETTINGS if key in accepted}
    return {**settings, **config.detector_options}


def create_face_detector(config: FaceConfig) -> FaceDetector:
    """Build the backend named by ``config.detector`` with :func:`detector_kwargs` (models load lazily,
    on the first ``detect``)."""
    return FACE_DETECTORS.get(config.detector)(**detector_kwargs(config))


def check_rgb_image(image: object) -> np.ndarray:
    """Return ``image`` if it is a non-empty uint8 (H, W, 3) array, else raise a ValueError saying why."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a numpy image array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image of shape (H, W, 3), got {image.dtype} {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image of shape {image.shape}")
    return image


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float, float]:
    """Shrink ``image`` so its longest side is <= ``max_side`` (never enlarge).

    Returns the (possibly unchanged) image and the factors (fx, fy) that map its x and y
    coordinates back to the input's.
    """
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image, 1.0, 1.0
    ratio = max_side / max(height, width)
    new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
    small = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return small, width / new_w, height / new_h


def to_detections(
    boxes: np.ndarray, scores: np.ndarray, fx: float, fy: float, min_face_size: float = 0.0
) -> list[Detection]:
    """Map (N, 4) x1, y1, x2, y2 boxes found on a resized image back by (fx, fy), sorted by score.

    Boxes whose longer side is below ``min_face_size`` full-resolution pixels are dropped (the
    backends' own size limits are only approximate).
    """
    detections = [
        Detection(BBox(float(x1) * fx, float(y1) * fy, float(x2) * fx, float(y2) * fy), float(score))
        for (x1, y1, x2, y2), score in zip(boxes.tolist(), scores.tolist(), strict=True)
    ]
    kept = [d for d in detections if max(d.box.width, d.box.height) >= min_face_size]
    return sorted(kept, key=lambda d: -d.score)
