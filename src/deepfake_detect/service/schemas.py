"""The typed answers of the HTTP service, as they appear in ``/openapi.json``.

They describe exactly the JSON that ``deepfake-detect detect --json`` writes (``VideoResult.to_json()``
per video, ``Detector.model_info()`` for the model; see ``inference.results.JSON_SCHEMA_DOC``): the same
keys in the same order, the same values. The model objects allow extra keys, so that a key added to
``model_info()`` reaches the client before it is declared here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deepfake_detect.types import VideoStatus

__all__ = [
    "DetectBody",
    "ErrorBody",
    "FaceBody",
    "FrameModelBody",
    "HealthBody",
    "ModelBody",
    "SequenceModelBody",
    "TimelinePointBody",
    "VideoBody",
]


class ErrorBody(BaseModel):
    """Every error answer: the reason as a sentence and a short code (``too_large``, ``busy``...)."""

    detail: str
    status: str


class HealthBody(BaseModel):
    status: str
    version: str
    workers: int
    capacity: int
    admitted: int
    running: int
    limits: dict[str, float | int]


class TimelinePointBody(BaseModel):
    """P(fake) of one short window of a face track, first to last frame of the window."""

    model_config = ConfigDict(extra="allow")

    start_s: float
    end_s: float
    fake_probability: float


class FaceBody(BaseModel):
    """One scored face track (``FaceResult.to_json()``)."""

    model_config = ConfigDict(extra="allow")

    track_id: int
    n_frames: int
    first_frame: int
    last_frame: int
    start_s: float
    end_s: float
    fake_probability: float
    n_windows: int
    timeline: list[TimelinePointBody]
    similarity: list[list[float]] | None = Field(description="cosine similarity of the frames' embeddings")
    similarity_frames: list[int] | None
    thumbnail_jpeg: str | None = Field(description="the first crop, a base64 JPEG")


class VideoBody(BaseModel):
    """The verdict on one video (``VideoResult.to_json()``); probability and label only when ``ok``."""

    model_config = ConfigDict(extra="allow")

    path: str
    status: VideoStatus
    fake_probability: float | None
    label: Literal["fake", "real"] | None
    threshold: float | None
    error: str | None
    warnings: list[str]
    faces: list[FaceBody]
    timings: dict[str, float] = Field(description="seconds per stage: decode ... head, total")
    info: dict[str, Any] = Field(description="the video and how it was read (size, fps, stride, frames...)")


class SequenceModelBody(BaseModel):
    """A sequence model (extractor + head) and the settings it runs with."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    path: str | None
    engine: str
    device: str
    precision: str | None
    backbone: str
    embed_dim: int
    input_size: int
    head: str
    head_kwargs: dict[str, Any]
    threshold: float
    temperature: float
    aggregation: str
    frame_stride: int
    clip_len: int
    min_clip_len: int
    timeline_window: int
    timeline_hop: int
    max_frames: int | None
    face_detector: str
    faces: dict[str, Any]
    created: str
    package_version: str
    kind: Literal["sequence"]
    card: dict[str, Any]
    warnings: list[str]


class FrameModelBody(BaseModel):
    """A frame model (an imported published detector) and its recipe."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    path: str | None
    kind: Literal["frame"]
    engine: str
    device: str
    precision: str | None
    precision_checks: list[dict[str, Any] | None]
    family: Any
    architecture: str
    members: int
    threshold: float
    aggregation: str
    recipe: dict[str, Any]
    card: dict[str, Any]
    warnings: list[str]
    created: str
    package_version: str


ModelBody = Annotated[SequenceModelBody | FrameModelBody, Field(discriminator="kind")]


class DetectBody(BaseModel):
    """``POST /v1/detect``: the document of ``deepfake-detect detect --json`` for one video."""

    videos: list[VideoBody]
    model: ModelBody
