"""What the detector says about one video: :class:`VideoResult`, its faces and their timelines.

``VideoResult.to_json()`` is the per-video object of ``deepfake-detect detect --json`` and of the HTTP
service; its schema is documented in ``detect_json.md`` (and mirrored in :data:`JSON_SCHEMA_DOC`).
Probabilities are P(fake) in [0, 1]. A video gets one only when its status is ``ok``: a video without a
usable face clip is ``no_face`` or ``too_short``, never a made-up 0.5.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal

import numpy as np

from deepfake_detect.infra.files import json_safe
from deepfake_detect.types import VideoStatus

# Statuses that are an answer about the video (exit code 0), not a failure to read it.
ANSWERED_STATUSES = frozenset({VideoStatus.OK, VideoStatus.NO_FACE, VideoStatus.TOO_SHORT})

TIMING_STAGES = ("decode", "detect", "crop", "embed", "head", "total")

JSON_SCHEMA_DOC = """\
{"path": str, "status": "ok"|"no_face"|"too_short"|"undecodable"|"unsupported_format"|"no_video_stream"
                       |"not_found"|"too_large",
 "fake_probability": float|null, "label": "fake"|"real"|null, "threshold": float|null, "error": str|null,
 "warnings": [str], "timings": {"decode"|"detect"|"crop"|"embed"|"head"|"total": seconds},
 "info": {...}, "faces": [{"track_id": int, "n_frames": int, "first_frame": int, "last_frame": int,
   "start_s": float, "end_s": float, "fake_probability": float, "n_windows": int,
   "timeline": [{"start_s": float, "end_s": float, "fake_probability": float}],
   "similarity": [[float]]|null, "similarity_frames": [int]|null, "thumbnail_jpeg": base64 str|null}]}"""


@dataclass(frozen=True)
class TimelinePoint:
    """P(fake) of one short window of a face track (``start_s`` .. ``end_s``, first to last frame)."""

    start_s: float
    end_s: float
    fake_probability: float

    def to_json(self) -> dict[str, float]:
        return {"start_s": self.start_s, "end_s": self.end_s, "fake_probability": self.fake_probability}


@dataclass
class FaceResult:
    """One scored face track.

    ``n_frames`` frames of the track were examined (``first_frame`` .. ``last_frame``, decode indices);
    ``fake_probability`` is the mean over its ``n_windows`` scoring windows. ``similarity`` is the
    cosine-similarity matrix of the embeddings of up to 64 evenly spaced frames (decode indices in
    ``similarity_frames``). ``thumbnail_jpeg`` is the first crop (96 px JPEG); ``thumbnails`` holds a
    few evenly spaced crops (the first included) for reports. ``embeddings`` / ``frame_indices``
    (float32 (N, D) / (N,)) are kept only with ``DetectOptions.keep_embeddings`` and never serialised.
    """

    track_id: int
    n_frames: int
    first_frame: int
    last_frame: int
    start_s: float
    end_s: float
    fake_probability: float
    timeline: list[TimelinePoint] = field(default_factory=list)
    similarity: list[list[float]] | None = None
    thumbnail_jpeg: bytes | None = None
    n_windows: int = 0
    similarity_frames: list[int] | None = None
    thumbnails: list[bytes] = field(default_factory=list, repr=False)
    embeddings: np.ndarray | None = field(default=None, repr=False, compare=False)
    frame_indices: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_json(self, *, similarity: bool = True, thumbnail: bool = True) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "n_frames": self.n_frames,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "fake_probability": self.fake_probability,
            "n_windows": self.n_windows,
            "timeline": [point.to_json() for point in self.timeline],
            "similarity": self.similarity if similarity else None,
            "similarity_frames": self.similarity_frames if similarity else None,
            "thumbnail_jpeg": _b64(self.thumbnail_jpeg) if thumbnail else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaceResult:
        thumbnail = _unb64(data.get("thumbnail_jpeg"))
        return cls(
            track_id=int(data["track_id"]),
            n_frames=int(data["n_frames"]),
            first_frame=int(data["first_frame"]),
            last_frame=int(data["last_frame"]),
            start_s=float(data["start_s"]),
            end_s=float(data["end_s"]),
            fake_probability=float(data["fake_probability"]),
            timeline=[TimelinePoint(**point) for point in data.get("timeline", [])],
            similarity=data.get("similarity"),
            thumbnail_jpeg=thumbnail,
            n_windows=int(data.get("n_windows", 0)),
            similarity_frames=data.get("similarity_frames"),
            thumbnails=[thumbnail] if thumbnail else [],
        )


@dataclass
class VideoResult:
    """The verdict on one video. ``fake_probability`` and ``label`` are set only when status is ``ok``;
    ``error`` is a sentence whenever it is not. ``timings`` are seconds per stage (see TIMING_STAGES);
    ``info`` describes the video and how it was read (size, fps, duration, stride, frames used...)."""

    path: str
    status: VideoStatus
    fake_probability: float | None = None
    label: Literal["fake", "real"] | None = None
    error: str | None = None
    faces: list[FaceResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    threshold: float | None = None

    def __post_init__(self) -> None:
        self.status = VideoStatus(self.status)
        if self.status is VideoStatus.OK:
            if self.fake_probability is None or not math.isfinite(self.fake_probability):
                raise ValueError("an ok result needs a finite fake_probability")
        elif self.fake_probability is not None or self.label is not None:
            raise ValueError(f"a {self.status.value} result has no probability or label")

    @property
    def ok(self) -> bool:
        return self.status is VideoStatus.OK

    @property
    def answered(self) -> bool:
        """True when the video was read (scored, or legitimately without a usable face)."""
        return self.status in ANSWERED_STATUSES

    def to_json(self, *, similarity: bool = True, thumbnails: bool = True) -> dict[str, Any]:
        """A JSON-safe dict (thumbnails as base64 strings); see :data:`JSON_SCHEMA_DOC`."""
        return {
            "path": self.path,
            "status": self.status.value,
            "fake_probability": self.fake_probability,
            "label": self.label,
            "threshold": self.threshold,
            "error": self.error,
            "warnings": list(self.warnings),
            "faces": [face.to_json(similarity=similarity, thumbnail=thumbnails) for face in self.faces],
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "info": json_safe(self.info),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VideoResult:
        return cls(
            path=str(data["path"]),
            status=VideoStatus(data["status"]),
            fake_probability=data.get("fake_probability"),
            label=data.get("label"),
            error=data.get("error"),
            faces=[FaceResult.from_json(face) for face in data.get("faces", [])],
            timings=dict(data.get("timings", {})),
            info=dict(data.get("info", {})),
            warnings=list(data.get("warnings", [])),
            threshold=data.get("threshold"),
        )

    @classmethod
    def failed(cls, path: str, status: VideoStatus, problem: str, **kwargs: Any) -> VideoResult:
        """A result without a probability (any status but ok); its error sentence is "NAME: problem."."""
        if status is VideoStatus.OK:
            raise ValueError("failed() needs a status other than ok")
        text = problem.strip().rstrip(".")
        return cls(path=path, status=status, error=f"{PurePath(path).name}: {text}.", **kwargs)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
