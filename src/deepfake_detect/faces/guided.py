"""Track-guided detection at keyframes (``faces.tracked``): look for each known face only near where it was.

A face found at one keyframe is, a few frames later, within a fraction of its size of its last box and of
about the same size. So instead of a full-frame pyramid search the detector runs on one small image per
face: the square of ``CONTEXT`` x the face's longer side centred on its last box (zeros beyond the frame),
downscaled as the full-frame scan downscales the frame (so the detector sees the face as it would there),
with the pyramid starting at ``MIN_FACE_FRACTION`` of the face's last size. The whole frame is
still scanned at every ``full_scan_every``-th keyframe (new faces), whenever no face is known, and whenever
a known face is not found again in its region (a lost track), so such a keyframe gets exactly the
full-frame detections.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from deepfake_detect.config import FaceConfig
from deepfake_detect.faces.crop import crop_face, square_crop_bounds
from deepfake_detect.faces.detectors.base import FaceDetector, supports_scaled
from deepfake_detect.types import BBox, Detection

logger = logging.getLogger(__name__)

CONTEXT = 2.5  # side of a face's search region / the face's longer side
MIN_FACE_FRACTION = 0.6  # the region's pyramid looks for faces from this fraction of the last size on
MAX_SHIFT = 0.75  # a face found in a region is the known one if its centre moved at most this x its size
MAX_GROWTH = 1.6  # ... and its size changed by at most this factor (either way)
_PYRAMID_FACTOR = 0.709  # facenet-pytorch MTCNN's scale step
SAME_FACE_IOU = 0.5  # two regions' faces overlapping more than this are one face: scan the whole frame


@dataclass(frozen=True)
class Region:
    """A square of the full frame, x0 <= x < x0 + side (likewise y), seen as a ``size`` px image."""

    x0: int
    y0: int
    side: int
    size: int

    @property
    def scale(self) -> float:
        """Region image pixels per full-frame pixel."""
        return self.size / self.side

    def to_frame(self, box: BBox) -> BBox:
        """A box in the region image's pixels mapped to full-frame pixels."""
        s = self.side / self.size
        return BBox(self.x0 + box.x1 * s, self.y0 + box.y1 * s, self.x0 + box.x2 * s, self.y0 + box.y2 * s)


def region_around(box: BBox, shrink: float, context: float = CONTEXT) -> Region:
    """The search region of a face last seen at ``box``: the square of ``context`` x its longer side
    centred on it, its corner and side moved out to multiples of ``shrink`` (the full-frame scan's
    downscale factor), shown ``shrink`` times smaller: where the factor is a whole number its pixels are
    those of the downscaled frame."""
    x, y, side = square_crop_bounds(box, context - 1.0)
    x0, y0 = math.floor(x / shrink) * shrink, math.floor(y / shrink) * shrink
    size = max(1, math.ceil((max(x + side - x0, y + side - y0)) / shrink))
    return Region(round(x0), round(y0), round(size * shrink), size)


def pyramid_start(base: float, smallest: float) -> float:
    """The largest ``base / 0.709**k`` (k = 0, 1, ...) at most ``smallest``: a face size at which MTCNN's
    pyramid (factor 0.709) has a subset of the scales a scan from ``base`` has."""
    if smallest <= base:
        return base
    return base / _PYRAMID_FACTOR ** math.floor(math.log(smallest / base) / -math.log(_PYRAMID_FACTOR))


class GuidedScan:
    """Chooses, keyframe by keyframe, between a full-frame scan and a search around the known faces.

    ``full_scans`` and ``guided_scans`` count the keyframes detected each way. Backends without
    ``detect_scaled`` (Haar) always scan the whole frame.
    """

    def __init__(self, detector: FaceDetector, config: FaceConfig) -> None:
        self.detector = detector
        self.config = config
        self.enabled = config.tracked and supports_scaled(detector)
        self.full_scans = 0
        self.guided_scans = 0
        self._since_full = 0

    def detect(self, image: np.ndarray, known: list[Detection]) -> list[Detection]:
        """The faces of keyframe ``image``, given the boxes ``known`` at the keyframe before."""
        due = self._since_full + 1 >= self.config.full_scan_every
        if self.enabled and known and not due:
            found = self._around(image, known)
            if found is not None:
                self._since_full += 1
                self.guided_scans += 1
                return found
        self._since_full = 0
        self.full_scans += 1
        return self.detector.detect(image)

    def _around(self, image: np.ndarray, known: list[Detection]) -> list[Detection] | None:
        """Each known face found again near its last box, or None if one of them was not."""
        shrink = max(1.0, max(image.shape[:2]) / self.config.detect_max_side)
        picked: list[Detection] = []
        for last in known:
            region = region_around(last.box, shrink)
            square = BBox(region.x0, region.y0, region.x0 + region.side, region.y0 + region.side)
            cut = crop_face(image, square, region.size, 0.0)
            smallest = MIN_FACE_FRACTION * max(last.box.width, last.box.height) * region.scale
            smallest = pyramid_start(max(12.0, self.config.min_face_size / shrink), smallest)
            found = self.detector.detect_scaled([cut], smallest)[0]  # type: ignore[attr-defined]
            mapped = [Detection(region.to_frame(d.box), d.score) for d in found]
            mapped = [d for d in mapped if max(d.box.width, d.box.height) >= self.config.min_face_size]
            best = max(mapped, key=lambda d: d.box.iou(last.box), default=None)
            if best is None or not _same_face(last.box, best.box):
                logger.debug("a face was lost near %s: scanning the whole frame", last.box)
                return None
            if any(best.box.iou(p.box) > SAME_FACE_IOU for p in picked):
                return None
            picked.append(best)
        return sorted(picked, key=lambda d: -d.score)


def _same_face(last: BBox, found: BBox) -> bool:
    """Whether ``found`` is near enough to ``last`` and of about its size to be the same face."""
    size, new = max(last.width, last.height), max(found.width, found.height)
    (ax, ay), (bx, by) = last.center, found.center
    near = max(abs(ax - bx), abs(ay - by)) <= MAX_SHIFT * size
    return near and 1 / MAX_GROWTH <= new / size <= MAX_GROWTH
