"""The worker side of ``Detector.detect_many``: what each isolated process loads and runs, without torch here.

The parent only builds a :class:`WorkerSpec` (model path, engine, device, options) and hands paths out;
torch, the weights and the face detector are imported and loaded once per worker, in :func:`init_worker`.
:func:`detect_in_worker` is the per-video task of ``detect`` and of the HTTP service alike.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepfake_detect.inference.results import VideoResult
from deepfake_detect.infra.isolation import IsolatedPool, WorkerFailure
from deepfake_detect.types import VideoStatus

if TYPE_CHECKING:  # this module stays light: the service's server process imports it
    from deepfake_detect.inference.detector import Detector
    from deepfake_detect.inference.options import DetectOptions

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "WorkerSpec",
    "detect_in_worker",
    "first_worker_precision",
    "init_worker",
    "model_load_error",
    "run_in_workers",
    "worker_detector",
    "worker_failure_result",
    "worker_precision",
    "worker_spec",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to rebuild the Detector (picklable)."""

    model_dir: str
    engine: str
    device: str
    options: DetectOptions
    threads: int


MODEL_ERRORS = ("ModelDirError", "UnknownNameError", "WeightsError")  # a model that does not load


def model_load_error(failure: WorkerFailure) -> str | None:
    """The sentence of a worker that could not load its model (a usage error), else None."""
    prefix = "worker initializer failed: "
    if failure.kind != "error" or not failure.message.startswith(prefix):
        return None
    kind, _, sentence = failure.message[len(prefix) :].partition(": ")
    return sentence if kind in MODEL_ERRORS else None


def worker_spec(
    model_dir: Path,
    engine: str,
    device: str,
    options: DetectOptions,
    threads: int | None,
    workers: int,
    cluster: str | None,
) -> WorkerSpec:
    """The spec of ``detect_many``'s workers; ``threads`` None: this machine's cores shared among them."""
    shared = max(1, (os.cpu_count() or 1) // _local_workers(workers, cluster))
    return WorkerSpec(str(model_dir.absolute()), engine, device, options, threads=threads or shared)


_WORKER: dict[str, Detector] = {}  # the Detector of this worker process


def init_worker(spec: WorkerSpec) -> None:
    """IsolatedPool initializer: limit threads and load the Detector once for this process."""
    import cv2
    import torch

    from deepfake_detect.inference.detector import Detector

    torch.set_num_threads(spec.threads)
    cv2.setNumThreads(1)
    detector = Detector.load(spec.model_dir, engine=spec.engine, device=spec.device, options=spec.options)
    detector.warm_up()
    _WORKER["detector"] = detector


def worker_detector() -> Detector:
    """The Detector loaded by :func:`init_worker` in this worker process."""
    try:
        return _WORKER["detector"]
    except KeyError:
        raise RuntimeError("no Detector in this process: init_worker has not run") from None


def detect_in_worker(path: str) -> VideoResult:
    """The default per-file task of :meth:`Detector.detect_many`."""
    return worker_detector().detect(path)


def worker_precision(_: str) -> str | None:
    """The precision the worker's engine runs at after its warm-up (``model.precision`` of the JSON)."""
    precision = worker_detector().model_info()["precision"]
    return None if precision is None else str(precision)


def run_in_workers(
    spec: WorkerSpec,
    task: Callable[[str], VideoResult] | None,
    paths: Iterable[Path | str],
    workers: int,
    timeout_s: float | None,
    memory_mb: int | None,
    cluster: str | None,
    *,
    on_precision: Callable[[str | None], None] | None = None,
) -> Iterator[VideoResult]:
    """``task`` (default :func:`detect_in_worker`) per path in isolated workers, in completion order;
    ``memory_mb`` per worker for one video, on top of what the worker held once its model was loaded.

    ``on_precision``: called once with :func:`worker_precision` of the first worker ready (local pool only).
    """
    outcomes = _outcomes(
        spec, task or detect_in_worker, paths, workers, timeout_s, memory_mb, cluster, on_precision
    )
    for item, outcome in outcomes:
        if isinstance(outcome, WorkerFailure):
            logger.warning("%s: worker failed (%s: %s)", item, outcome.kind, outcome.message)
            yield worker_failure_result(item, outcome)
        else:
            yield outcome


def _local_workers(workers: int, cluster: str | None) -> int:
    """Worker processes sharing this machine's cores (a remote cluster's workers: one thread each)."""
    if cluster is None:
        return workers
    from deepfake_detect.cluster import parse_cluster_address

    local = parse_cluster_address(cluster).local_workers
    return local if local is not None else os.cpu_count() or 1


def _outcomes(
    spec: WorkerSpec,
    task: Callable[[str], VideoResult],
    paths: Iterable[Path | str],
    workers: int,
    timeout_s: float | None,
    memory_mb: int | None,
    cluster: str | None,
    on_precision: Callable[[str | None], None] | None = None,
) -> Iterator[tuple[str, VideoResult | WorkerFailure]]:
    if cluster is not None:
        yield from _cluster_outcomes(spec, task, paths, timeout_s, memory_mb, cluster, on_precision)
        return
    pool = IsolatedPool(
        workers, initializer=init_worker, initargs=(spec,), timeout_s=timeout_s, memory_mb=memory_mb
    )
    with pool:
        if on_precision is not None:  # waits for the first worker, as the first video would
            ((_, precision),) = pool.imap_unordered(worker_precision, [""])
            on_precision(None if isinstance(precision, WorkerFailure) else precision)
        yield from pool.imap_unordered(task, (str(p) for p in paths))


_PRECISION_JOB = ""  # the item of the cluster job that asks a worker for its precision (no video)


def _cluster_job(job: tuple[Callable[[str], Any], str]) -> Any:
    """One Dask task: ``fn(path)`` (the video task, or :func:`worker_precision`)."""
    fn, path = job
    return fn(path)


def _cluster_outcomes(
    spec: WorkerSpec,
    task: Callable[[str], VideoResult],
    paths: Iterable[Path | str],
    timeout_s: float | None,
    memory_mb: int | None,
    cluster: str,
    on_precision: Callable[[str | None], None] | None,
) -> Iterator[tuple[str, VideoResult | WorkerFailure]]:
    """The videos as Dask tasks; with ``on_precision``, a first task asks a worker for its precision."""
    from deepfake_detect.cluster import PoolSpec, map_isolated

    pool_spec = PoolSpec(init_worker, (spec,), timeout_s, memory_mb)
    resources = {"GPU": 1.0} if spec.device.startswith("cuda") else None  # one video per GPU at a time
    first = [(worker_precision, _PRECISION_JOB)] if on_precision is not None else []
    jobs = itertools.chain(first, ((task, str(p)) for p in paths))
    outcomes = map_isolated(
        cluster,
        _cluster_job,
        jobs,
        pool_spec,
        key=lambda job: Path(job[1]).name or "precision",
        resources=resources,
    )
    for (fn, path), outcome in outcomes:
        if fn is worker_precision and on_precision is not None:
            on_precision(None if isinstance(outcome, WorkerFailure) else outcome)
        else:
            yield path, outcome


def first_worker_precision(spec: WorkerSpec) -> str | None:
    """:func:`worker_precision` of one isolated worker started for it (None if it fails)."""
    with IsolatedPool(1, initializer=init_worker, initargs=(spec,)) as pool:
        ((_, precision),) = pool.imap_unordered(worker_precision, [""])
    return None if isinstance(precision, WorkerFailure) else precision


def worker_failure_result(path: str, failure: WorkerFailure) -> VideoResult:
    """The result for a file whose worker died, hung or blew its memory limit (by the failure's type)."""
    if failure.kind == "timeout" or failure.out_of_memory:
        return VideoResult.failed(
            path,
            VideoStatus.TOO_LARGE,
            f"processing exceeded the worker's limits ({failure.message}); the video is too long or too "
            "large for them (raise --timeout or --memory-mb)",
        )
    if failure.kind == "crash":
        return VideoResult.failed(
            path,
            VideoStatus.UNDECODABLE,
            f"the decoder crashed on this file ({failure.message}); it is probably corrupt",
        )
    return VideoResult.failed(
        path, VideoStatus.UNDECODABLE, f"analysing the video failed ({failure.message})"
    )
