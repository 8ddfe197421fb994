"""The worker pool behind the service: one Detector per worker process, admission, slots and timeouts.

Worker side: :func:`init_worker` loads the :class:`~deepfake_detect.inference.Detector` once per process
(an :class:`~deepfake_detect.infra.isolation.IsolatedPool` initializer) with the service's limits as its
options; each upload then goes through ``inference.workers.detect_in_worker``, the per-video task of
``deepfake-detect detect`` (the pipeline checks resolution and duration before any model work). A decoder
crash, a hang or a memory blow-up kills that worker only; the pool replaces it and the request gets an
answer.

Server side: :class:`DetectorPool` admits at most ``workers + queue_size`` requests (503 beyond that),
lets at most ``workers`` jobs run, enforces the per-request timeout, and deletes each upload when its job
is over. Results come back as :class:`~deepfake_detect.inference.results.VideoResult` objects (numpy, no
torch), so the server process never imports torch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepfake_detect.inference.results import VideoResult
from deepfake_detect.inference.workers import detect_in_worker
from deepfake_detect.infra.isolation import IsolatedPool, IsolationError, WorkerFailure
from deepfake_detect.service.settings import ServiceSettings

logger = logging.getLogger(__name__)

__all__ = [
    "DetectorPool",
    "JobTimeoutError",
    "QueueFullError",
    "ServiceUnavailableError",
    "WorkerConfig",
    "detect_in_worker",
    "init_worker",
    "model_info_job",
]

# --- worker side (runs in the pool's child processes) -------------------------------------------------


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs to load the model once with the service's limits (picklable, no torch)."""

    model_dir: str
    engine: str
    max_duration_s: float
    max_pixels: int
    torch_threads: int
    container_formats: tuple[str, ...]


def init_worker(config: WorkerConfig) -> None:
    """Pool initializer: the service's settings as DetectOptions, then ``detect``'s worker initializer
    (torch is imported here, in the worker, not in the server)."""
    from deepfake_detect.inference import DetectOptions
    from deepfake_detect.inference.workers import WorkerSpec
    from deepfake_detect.inference.workers import init_worker as load_detector

    options = DetectOptions(
        keep_similarity=True,
        keep_thumbnails=True,
        max_pixels=config.max_pixels,
        max_duration_s=config.max_duration_s,
        container_formats=config.container_formats,
    )
    load_detector(WorkerSpec(config.model_dir, config.engine, "cpu", options, threads=config.torch_threads))


def model_info_job(_: object) -> dict[str, Any]:
    """The loaded model's description (``Detector.model_info``)."""
    from deepfake_detect.inference import worker_detector

    info: dict[str, Any] = worker_detector().model_info()
    return info


# --- server side --------------------------------------------------------------------------------------


class ServiceUnavailableError(RuntimeError):
    """The worker pool cannot serve: the model did not load, or the pool was closed (message says why)."""


class QueueFullError(Exception):
    """Every admission slot is taken; ``retry_after_s`` estimates when one frees up."""

    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"the server is busy; retry in about {retry_after_s} s")


class JobTimeoutError(Exception):
    """No result within the per-request timeout."""


class DetectorPool:
    """Runs ``detect_in_worker`` for concurrent requests on a fixed set of worker processes.

    Call :meth:`start` (blocking: it waits until a worker has loaded the model) and :meth:`close`; the
    coroutine methods must be used from one event loop.
    """

    def __init__(self, model_dir: Path, settings: ServiceSettings) -> None:
        self.settings = settings
        self._config = WorkerConfig(
            model_dir=str(Path(model_dir).resolve()),
            engine=settings.engine,
            max_duration_s=settings.max_duration_s,
            max_pixels=settings.max_pixels,
            torch_threads=settings.worker_threads or max(1, (os.cpu_count() or 1) // settings.workers),
            container_formats=settings.container_formats,
        )
        self._pool: IsolatedPool | None = None
        self._executor = ThreadPoolExecutor(settings.workers, thread_name_prefix="detect-job")
        self._slots: asyncio.Semaphore | None = None
        self._admitted = self._running = 0
        self._mean_job_s = 10.0  # running estimate for Retry-After
        self.model_info: dict[str, Any] = {}

    def start(self) -> None:
        settings = self.settings
        self._pool = IsolatedPool(
            settings.workers,
            initializer=init_worker,
            initargs=(self._config,),
            timeout_s=settings.request_timeout_s,
            memory_mb=settings.worker_memory_mb,
        )
        outcome = self._call(model_info_job, None)
        if isinstance(outcome, WorkerFailure):
            raise ServiceUnavailableError(f"the model worker failed: {outcome.message}")
        self.model_info = outcome
        logger.info("%d worker(s) ready with the model in %s", settings.workers, self._config.model_dir)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _call(self, fn: Callable[[Any], Any], item: Any) -> Any:
        if self._pool is None:
            raise ServiceUnavailableError("the worker pool is not started")
        try:
            for _, outcome in self._pool.imap_unordered(fn, [item]):
                return outcome
        except IsolationError as exc:
            raise ServiceUnavailableError(str(exc)) from None
        raise AssertionError("the pool returned no outcome")  # pragma: no cover

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold one admission slot for the body of the ``with``; :class:`QueueFullError` when none is free."""
        if self._admitted >= self.settings.capacity:
            raise QueueFullError(self.retry_after_s())
        self._admitted += 1
        try:
            yield
        finally:
            self._admitted -= 1

    def retry_after_s(self) -> int:
        waiting = max(1, self._admitted - self.settings.workers + 1)
        return int(min(600, max(1, math.ceil(self._mean_job_s * waiting / self.settings.workers))))

    def stats(self) -> dict[str, int]:
        return {
            "workers": self.settings.workers,
            "capacity": self.settings.capacity,
            "admitted": self._admitted,
            "running": self._running,
        }

    async def run(self, path: Path, cleanup: Callable[[], None]) -> VideoResult | WorkerFailure:
        """Analyse ``path`` within the request timeout; ``cleanup`` runs once the job is really over.

        Raises :class:`JobTimeoutError` past ``request_timeout_s`` (waiting for a worker included); a job
        that is already running then goes on until the pool's own timeout kills it, keeping its file.
        """
        loop = asyncio.get_running_loop()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.settings.workers)
        timeout = self.settings.request_timeout_s
        deadline = loop.time() + timeout
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout)
        except BaseException as exc:
            cleanup()
            if isinstance(exc, TimeoutError):
                raise JobTimeoutError(f"no worker became free within {timeout:g} s") from None
            raise
        self._running += 1
        started = time.monotonic()
        future = loop.run_in_executor(self._executor, self._call, detect_in_worker, str(path))
        future.add_done_callback(lambda done: self._job_over(done, started, cleanup))
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - loop.time()))
        except TimeoutError:
            raise JobTimeoutError(f"no result within {timeout:g} s") from None

    def _job_over(self, future: asyncio.Future[Any], started: float, cleanup: Callable[[], None]) -> None:
        self._running -= 1
        assert self._slots is not None
        self._slots.release()
        cleanup()
        if not future.cancelled() and future.exception() is None:  # also marks the exception retrieved
            self._mean_job_s = 0.8 * self._mean_job_s + 0.2 * (time.monotonic() - started)
