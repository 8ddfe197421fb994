"""Small immutable value types shared by every layer (SPEC §3, layer 1)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


class Label(IntEnum):
    """Ground-truth label. 1 = fake, 0 = real everywhere in this project."""

    REAL = 0
    FAKE = 1

    @classmethod
    def parse(cls, value: object) -> Label:
        """Parse the spellings datasets use: 'FAKE'/'REAL', 'fake'/'real', 1/0 (DFDC meaning)."""
        text = str(value).strip().lower()
        if text in {"fake", "1", "true", "deepfake"}:
            return cls.FAKE
        if text in {"real", "0", "false", "original", "pristine"}:
            return cls.REAL
        raise ValueError(f"cannot read {value!r} as a label (expected fake/real or 1/0)")


class VideoStatus(StrEnum):
    """Outcome of processing one video; everything but ``ok`` carries an error sentence."""

    OK = "ok"
    NO_FACE = "no_face"
    TOO_SHORT = "too_short"
    UNDECODABLE = "undecodable"
    NO_VIDEO_STREAM = "no_video_stream"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    UNSUPPORTED_FORMAT = "unsupported_format"


@dataclass(frozen=True)
class BBox:
    """Axis-aligned box in pixel coordinates (x1, y1) top-left, (x2, y2) bottom-right."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.x1, self.y1, self.x2, self.y2)):
            raise ValueError(f"non-finite box {self}")
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError(f"box has negative size: {self}")

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    def scale(self, factor: float) -> BBox:
        """Multiply every coordinate (map a box found on a resized frame back to full size)."""
        return BBox(self.x1 * factor, self.y1 * factor, self.x2 * factor, self.y2 * factor)

    def square(self, margin: float = 0.0) -> BBox:
        """Square box around the same centre, side = max(w, h) * (1 + margin)."""
        cx, cy = self.center
        half = max(self.width, self.height) * (1.0 + margin) / 2.0
        return BBox(cx - half, cy - half, cx + half, cy + half)

    def iou(self, other: BBox) -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.width * self.height + other.width * other.height - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Frame:
    """One decoded video frame: uint8 RGB ``image`` (H, W, 3), its decode ``index`` and ``timestamp`` (s)."""

    index: int
    timestamp: float
    image: np.ndarray


@dataclass(frozen=True)
class Detection:
    """One face found in one image by a face detector."""

    box: BBox
    score: float


@dataclass(frozen=True)
class TrackedFace:
    """A face in one frame, given its track: the detection (full-resolution box) and uint8 crop (S, S, 3)."""

    frame_index: int
    timestamp: float
    track_id: int
    detection: Detection
    crop: np.ndarray


@dataclass(frozen=True)
class FaceTrack:
    """One face followed through a video: the frames it was seen in (increasing) and their timestamps (s).

    The same type serves preprocessing (cut into clips) and inference, where it also carries float32
    ``embeddings`` (N, D), row k for ``frame_indices[k]``, and a few small JPEG ``thumbnails``.
    """

    track_id: int
    frame_indices: tuple[int, ...]
    timestamps: tuple[float, ...]
    embeddings: np.ndarray | None = field(default=None, repr=False, compare=False)
    thumbnails: tuple[bytes, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        n = len(self.frame_indices)
        if len(self.timestamps) != n:
            raise ValueError(f"track {self.track_id}: {n} frames but {len(self.timestamps)} timestamps")
        if self.embeddings is not None and len(self.embeddings) != n:
            raise ValueError(f"track {self.track_id}: {n} frames but {len(self.embeddings)} embeddings")


@dataclass(frozen=True)
class VideoRecord:
    """One video of a dataset, as a layout reads it (SPEC §5).

    ``source_id`` is the original video a fake was made from; for a real video, its own id.
    ``label`` is None for unlabelled videos.
    """

    video_id: str
    path: Path
    label: Label | None
    source_id: str
    dataset: str
    split: str | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class ClipRow:
    """One row of the clip store's manifest: a clip of one track (status ``ok``), or the single row of a
    video that gave no clip (track and clip_index -1, no frames, ``error`` says why).

    ``timestamps`` (s) are as the manifest stores them, rounded to 4 decimals; ``crop_dir`` is the folder
    of the clip's JPEG crops relative to the store root (posix), empty for a failure row.
    """

    dataset: str
    video_id: str
    source_id: str
    label: Label | None
    split: str
    track: int
    clip_index: int
    frame_indices: tuple[int, ...]
    timestamps: tuple[float, ...]
    crop_dir: str
    status: VideoStatus
    error: str

    @property
    def n_frames(self) -> int:
        return len(self.frame_indices)
