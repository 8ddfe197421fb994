"""Settings of the HTTP service: upload limits, queue, workers, timeouts (all validated by pydantic)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from deepfake_detect.config import DEFAULT_CONTAINER_FORMATS


class ServiceSettings(BaseModel):
    """How much the server accepts and how much work it does at once.

    At most ``workers`` videos are analysed at the same time (one per worker process, each holding the
    model once); at most ``workers + queue_size`` requests are admitted (uploading, waiting or running),
    the rest get 503 with ``Retry-After``. Disk use is therefore bounded by about
    ``(2 * workers + queue_size) * max_upload_mb`` (a timed-out video keeps its file until its worker stops).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_upload_mb: float = Field(
        default=200.0, gt=0, description="largest request body, in MiB (413 past it)"
    )
    max_duration_s: float = Field(default=600.0, gt=0, description="longest video accepted, in seconds (422)")
    max_pixels: int = Field(
        default=3840 * 2160, ge=1, description="largest frame (width * height) accepted (422)"
    )
    workers: int = Field(default=1, ge=1, description="worker processes, each with its own copy of the model")
    queue_size: int = Field(
        default=8, ge=0, description="admitted requests beyond the busy workers (503 past it)"
    )
    request_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="limit for analysing one uploaded video: waiting + running (504 past it)",
    )
    container_formats: tuple[str, ...] = Field(
        default=DEFAULT_CONTAINER_FORMATS,
        min_length=1,
        description="FFmpeg demuxers an upload may be read with; others are unsupported_format (422)",
    )
    worker_threads: int | None = Field(
        default=None, ge=1, description="torch threads per worker; None: CPU cores // workers"
    )
    worker_memory_mb: int | None = Field(
        default=4096,
        ge=256,
        description="a worker whose resident memory grows by more than this (MB) above what it held once "
        "its model was loaded is killed and replaced",
    )
    engine: str = Field(default="torch", description="inference engine of the Detector ('torch' or 'onnx')")
    upload_dir: Path | None = Field(
        default=None,
        description="where uploads are spooled (a private folder is made inside); None: system temp",
    )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def capacity(self) -> int:
        """Requests admitted at once (uploading, queued or running)."""
        return self.workers + self.queue_size

    def limits(self) -> dict[str, float | int]:
        """The limits a client should know before uploading (shown by ``/v1/health`` and the page)."""
        return {
            "max_upload_mb": self.max_upload_mb,
            "max_upload_bytes": self.max_upload_bytes,
            "max_duration_s": self.max_duration_s,
            "max_pixels": self.max_pixels,
            "request_timeout_s": self.request_timeout_s,
        }
