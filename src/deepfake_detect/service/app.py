"""The HTTP service: ``POST /v1/detect``, ``GET /v1/health``, ``GET /v1/model``, the web page at ``/``.

Contract of ``POST /v1/detect`` (one video per request, as ``multipart/form-data`` field ``file``, or as
the raw request body with any other content type):

- 200: ``{"videos": [VIDEO], "model": MODEL}``, the same document as ``deepfake-detect detect --json``
  for one video: VIDEO is ``VideoResult.to_json()`` (its ``path`` is the uploaded file's name) with status
  ``ok``, ``no_face`` or ``too_short``; MODEL is ``GET /v1/model``. Both are typed in ``/openapi.json``
  (``service.schemas``: ``DetectBody``, ``VideoBody``, ``SequenceModelBody`` / ``FrameModelBody``).
- Errors: ``{"detail": "<reason>", "status": "<code>"}`` with 413 (``too_large``: the body passed
  ``max_upload_mb``), 422 (``bad_upload``, ``undecodable``, ``no_video_stream``, ``unsupported_format``:
  a playlist, image or other non-video format, never followed; ``too_large``: a resolution or duration
  limit), 503 (``busy``, with ``Retry-After``; ``unavailable``), 504 (``timeout``),
  500 (``internal``).

A request goes through three small steps (the LitServe habit): decode (:func:`receive_upload` streams the
body to a private temporary file), predict (:meth:`DetectorPool.run`: ``detect``'s own per-video task in
a worker process), encode (:func:`_respond` maps the outcome, by its status or its failure's type, to a
status code and the JSON above).

Configure with :class:`ServiceSettings`; :func:`app_from_env` builds the app for any ASGI server
(``uvicorn --factory deepfake_detect.service.app:app_from_env``) from ``DEEPFAKE_DETECT_MODEL`` and
``DEEPFAKE_DETECT_SERVICE_SETTINGS`` (a JSON object of settings).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import TypeAdapter, ValidationError
from starlette.requests import ClientDisconnect

from deepfake_detect._version import __version__
from deepfake_detect.inference.results import VideoResult
from deepfake_detect.infra.isolation import WorkerFailure
from deepfake_detect.service.schemas import DetectBody, ErrorBody, HealthBody, ModelBody
from deepfake_detect.service.settings import ServiceSettings
from deepfake_detect.service.uploads import UploadError, receive_upload
from deepfake_detect.service.workers import (
    DetectorPool,
    JobTimeoutError,
    QueueFullError,
    ServiceUnavailableError,
)

logger = logging.getLogger(__name__)

MODEL_ENV = "DEEPFAKE_DETECT_MODEL"
SETTINGS_ENV = "DEEPFAKE_DETECT_SERVICE_SETTINGS"
STATIC_DIR = Path(__file__).resolve().parent / "static"
VERDICT_STATUSES = frozenset({"ok", "no_face", "too_short"})  # the model looked at the video: 200
UNUSABLE_STATUSES = frozenset({"undecodable", "no_video_stream", "too_large", "unsupported_format"})  # 422

router = APIRouter()


_MODEL_BODY: TypeAdapter[Any] = TypeAdapter(ModelBody)


@dataclass
class ServiceState:
    settings: ServiceSettings
    pool: DetectorPool
    upload_dir: Path


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def _error(code: int, status: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(detail=detail, status=status).model_dump(), code, headers=headers)


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in [
        (413, "upload larger than max_upload_mb"),
        (422, "not a usable video: the reason is in detail"),
        (503, "queue full (see Retry-After) or workers unavailable"),
        (504, "no result within request_timeout_s"),
    ]
}


@router.post("/v1/detect", response_model=DetectBody, responses=_ERRORS, openapi_extra=_UPLOAD_BODY)
async def detect(request: Request) -> DetectBody | JSONResponse:
    """Analyse one uploaded video and return the verdict, per-face timelines and similarity matrices."""
    state, started = _state(request), time.monotonic()
    try:
        with state.pool.admitted():
            upload = await receive_upload(request, state.upload_dir, state.settings.max_upload_bytes)
            logger.info(
                "received %s (%d bytes) in %.2f s", upload.filename, upload.size, time.monotonic() - started
            )
            outcome = await state.pool.run(upload.path, cleanup=upload.discard)
    except QueueFullError as exc:
        return _error(503, "busy", str(exc), {"Retry-After": str(exc.retry_after_s)})
    except UploadError as exc:
        return _error(exc.http_status, exc.status, exc.message, {"Connection": "close"})
    except JobTimeoutError as exc:
        return _error(504, "timeout", str(exc))
    except ServiceUnavailableError as exc:
        return _error(503, "unavailable", str(exc))
    except ClientDisconnect:
        logger.info("the client went away during the upload")
        return _error(400, "disconnected", "the client disconnected during the upload")
    response = _respond(outcome, upload.path, upload.filename, state.pool.model_info)
    code = response.status_code if isinstance(response, JSONResponse) else 200
    logger.info("%s -> %d in %.2f s", upload.filename, code, time.monotonic() - started)
    return response


def _respond(
    outcome: VideoResult | WorkerFailure, path: Path, filename: str, model: dict[str, Any]
) -> DetectBody | JSONResponse:
    """The HTTP answer for a finished job; the server's temporary path is replaced by the client's name."""
    if isinstance(outcome, WorkerFailure):
        return _failure(outcome, filename)
    if outcome.status.value in VERDICT_STATUSES:
        client = dataclasses.replace(
            outcome,
            path=filename,
            error=_client_names(outcome.error, path, filename) if outcome.error else outcome.error,
            warnings=[_client_names(w, path, filename) for w in outcome.warnings],
        )
        return DetectBody.model_validate({"videos": [client.to_json()], "model": model})
    detail = _client_names(outcome.error or outcome.status.value, path, filename)
    code = 422 if outcome.status.value in UNUSABLE_STATUSES else 500
    return _error(code, outcome.status.value, detail)


def _client_names(text: str, path: Path, filename: str) -> str:
    """``text`` with the spooled file's path, or its bare name, replaced by the name the client gave."""
    return text.replace(str(path), filename).replace(path.name, filename)


def _failure(failure: WorkerFailure, filename: str) -> JSONResponse:
    """A worker that hung (504), ran out of memory (422 too_large), crashed (422) or raised (500), told
    apart by the failure's kind and ``out_of_memory``, never by its message."""
    logger.warning("worker failed on %s: %s: %s", filename, failure.kind, failure.message)
    if failure.kind == "timeout":
        return _error(504, "timeout", failure.message)
    if failure.out_of_memory:
        detail = f"{filename}: analysing it needs more memory than a worker may use ({failure.message})"
        return _error(422, "too_large", detail)
    if failure.kind == "crash":
        detail = f"{filename}: the decoder crashed on this file ({failure.message}); it is probably corrupt"
        return _error(422, "undecodable", detail)
    logger.error("detect failed on %s:\n%s", filename, failure.details)
    return _error(500, "internal", "the server failed while analysing this video (see its log)")


@router.get("/v1/health", response_model=HealthBody)
async def health(request: Request) -> HealthBody:
    """Liveness and load: workers, admitted requests, running jobs, and the upload limits."""
    state = _state(request)
    stats = state.pool.stats()
    return HealthBody(status="ok", version=__version__, limits=state.settings.limits(), **stats)


@router.get("/v1/model", response_model=ModelBody)
async def model(request: Request) -> Any:
    """The loaded model's description (``Detector.model_info()``)."""
    return _MODEL_BODY.validate_python(_state(request).pool.model_info)


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


def create_app(model_dir: Path | str, settings: ServiceSettings | None = None) -> FastAPI:
    """The FastAPI app; its workers load the model when the server starts (lifespan), not here."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ValueError(f"{model_dir} is not a model directory (no config.json)")
    settings = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upload_dir = Path(tempfile.mkdtemp(prefix="deepfake-detect-uploads-", dir=settings.upload_dir))
        pool = DetectorPool(model_dir, settings)
        try:
            await anyio.to_thread.run_sync(pool.start)
            app.state.service = ServiceState(settings, pool, upload_dir)
            yield
        finally:
            await anyio.to_thread.run_sync(pool.close)
            shutil.rmtree(upload_dir, ignore_errors=True)

    app = FastAPI(
        title="deepfake-detect",
        version=__version__,
        description="Upload a face video; get a deepfake verdict, per-face timelines and similarity maps.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def app_from_env() -> FastAPI:
    """App factory for ASGI servers: model from ``$DEEPFAKE_DETECT_MODEL``, settings from JSON in
    ``$DEEPFAKE_DETECT_SERVICE_SETTINGS`` (optional; e.g. ``{"workers": 2, "max_upload_mb": 50}``)."""
    model_dir = os.environ.get(MODEL_ENV)
    if not model_dir:
        raise ValueError(f"set {MODEL_ENV} to a model directory")
    raw = os.environ.get(SETTINGS_ENV) or "{}"
    try:
        settings = ServiceSettings.model_validate_json(raw)
    except ValidationError as exc:
        raise ValueError(f"{SETTINGS_ENV} does not hold valid settings: {exc}") from None
    return create_app(model_dir, settings)
