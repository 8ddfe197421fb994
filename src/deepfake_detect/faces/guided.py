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
from dataclasses import dataclass

import numpy as np

from deepfake_detect.config import FaceConfig
from deepfake_detect.faces.crop import crop_face, square_crop_bounds
from deepfake_detect.faces.detectors.base import FaceDetector, supports_scaled
from deepfake_detect.types import BBox, Detection

logger = logging.getLogger(__name__)

CONTEXT = 2.0  # side of a face's search region / the face's longer side
MIN_FACE_FRACTION = 0.6  # the region's pyramid looks for faces from this fraction of the last size on
MIN_IOU = 0.3  # a face found in a region is the known face only if it overlaps its last box this much
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
    """The search region of a face last seen at ``box``: the same square that ``crop_face`` cuts with
    margin ``context - 1``, shown ``shrink`` times smaller (the full-frame scan's downscale factor)."""
    x0, y0, side = square_crop_bounds(box, context - 1.0)
    return Region(x0, y0, side, max(1, round(side / shrink)))


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
            cut = crop_face(image, last.box, region.size, CONTEXT - 1.0)
            smallest = MIN_FACE_FRACTION * max(last.box.width, last.box.height) * region.scale
            found = self.detector.detect_scaled([cut], smallest)[0]  # type: ignore[attr-defined]
            mapped = [Detection(region.to_frame(d.box), d.score) for d in found]
            mapped = [d for d in mapped if max(d.box.width, d.box.height) >= self.config.min_face_size]
            best = max(mapped, key=lambda d: d.box.iou(last.box), default=None)
            if best is None or best.box.iou(last.box) < MIN_IOU:
                logger.debug("a face was lost near %s: scanning the whole frame", last.box)
                return None
            if any(best.box.iou(p.box) > SAME_FACE_IOU for p in picked):
                return None
            picked.append(best)
        return sorted(picked, key=lambda d: -d.score)
