"""Linking faces into tracks frame to frame by crop MSE (SPEC §2 'Multi-face and false detection').

Each new face is paired with the track whose last crop is closest in mean squared error; pairs are
formed greedily by increasing MSE over all face-track pairs of the frame, at most one face per
track, and only below ``mse_threshold``. Faces left unpaired start new tracks (ids 0, 1, 2, ...).
A frame without faces changes nothing: the tracks simply have a gap there.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

logger = logging.getLogger(__name__)


def standardise(crop: np.ndarray, compare_size: int) -> np.ndarray:
    """Resize a uint8 (H, W, 3) crop to (compare_size, compare_size, 3); map pixels to (x - 127.5) / 128."""
    if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        shape = getattr(crop, "shape", None)
        raise ValueError(f"expected a uint8 (H, W, 3) face crop, got {type(crop).__name__} {shape}")
    if crop.shape[0] == 0 or crop.shape[1] == 0:
        raise ValueError(f"empty face crop of shape {crop.shape}")
    if crop.shape[:2] != (compare_size, compare_size):
        shrinking = crop.shape[0] * crop.shape[1] > compare_size * compare_size
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        crop = cv2.resize(crop, (compare_size, compare_size), interpolation=interpolation)
    return (crop.astype(np.float32) - 127.5) / 128.0  # (S, S, 3), exact for uint8 input


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    diff = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(diff * diff))


class FaceTracker:
    """Assigns a track id to every face crop of a stream of frames; keeps only each track's last crop."""

    def __init__(self, mse_threshold: float = 0.5, compare_size: int = 64) -> None:
        if not mse_threshold > 0:
            raise ValueError(f"mse_threshold must be > 0, got {mse_threshold}")
        if compare_size < 1:
            raise ValueError(f"compare_size must be >= 1, got {compare_size}")
        self.mse_threshold = mse_threshold
        self.compare_size = compare_size
        self._last: dict[int, np.ndarray] = {}  # track id -> standardised last crop (S, S, 3)
        self._next_id = 0
        self._last_frame: int | None = None

    @property
    def num_tracks(self) -> int:
        return self._next_id

    def mse(self, a: np.ndarray, b: np.ndarray) -> float:
        """MSE between two uint8 crops, both resized to compare_size and standardised."""
        return _mse(standardise(a, self.compare_size), standardise(b, self.compare_size))

    def update(self, frame_index: int, crops: list[np.ndarray]) -> list[int]:
        """Track id for each crop of frame ``frame_index`` (in the order given).

        Frames must come in increasing order; each frame is given once, with all its faces.
        """
        if self._last_frame is not None and frame_index <= self._last_frame:
            raise ValueError(
                f"frames must be given in increasing order: got {frame_index} after {self._last_frame}"
            )
        faces = [standardise(crop, self.compare_size) for crop in crops]
        self._last_frame = frame_index
        ids = self._pair(faces)
        for face_no, track_id in enumerate(ids):
            if track_id is None:
                ids[face_no] = self._next_id
                self._next_id += 1
        assigned = [i for i in ids if i is not None]
        for track_id, face in zip(assigned, faces, strict=True):
            self._last[track_id] = face
        return assigned

    def _pair(self, faces: list[np.ndarray]) -> list[int | None]:
        """Greedy pairing by increasing MSE; ties go to the earlier face, then the older track."""
        candidates = sorted(
            (_mse(face, last), face_no, track_id)
            for face_no, face in enumerate(faces)
            for track_id, last in self._last.items()
        )
        ids: list[int | None] = [None] * len(faces)
        used: set[int] = set()
        for error, face_no, track_id in candidates:
            if error >= self.mse_threshold:
                break
            if ids[face_no] is None and track_id not in used:
                ids[face_no] = track_id
                used.add(track_id)
        return ids
