"""The :class:`Detector` facade: a model directory in, a :class:`VideoResult` per video out."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_detect.faces import FaceDetector, create_face_detector
from deepfake_detect.inference.engine import Engine, create_engine
from deepfake_detect.inference.model_card import sequence_card
from deepfake_detect.inference.options import DetectOptions, resolve
from deepfake_detect.inference.pipeline import analyze_video, failure_result
from deepfake_detect.inference.results import VideoResult
from deepfake_detect.isolation import IsolatedPool, WorkerFailure
from deepfake_detect.models.frame_dir import model_dir_kind
from deepfake_detect.types import VideoStatus
from deepfake_detect.video import VideoError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 600.0


class Detector:
    """Deepfake verdicts for videos with one loaded model.

    ``detect(path)`` runs in this process and never raises for a bad file (the result carries the
    status and an error sentence). ``detect_many`` runs each file in a child process
    (:class:`~deepfake_detect.isolation.IsolatedPool`) so that a decoder crash, a hang or a memory
    blow-up costs that file only; use it for untrusted files.
    """

    def __init__(
        self,
        engine: Engine,
        options: DetectOptions | None = None,
        *,
        model_dir: Path | str | None = None,
        engine_name: str | None = None,
        device: str = "cpu",
    ) -> None:
        self.engine = engine
        self.options = options or DetectOptions()
        self.settings = resolve(self.options, engine.config, device)
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.engine_name = engine_name or engine.name
        self.device = device
        self._face_detector: FaceDetector | None = None

    @classmethod
    def load(
        cls,
        model_dir: Path | str,
        *,
        engine: str = "torch",
        device: str = "cpu",
        options: DetectOptions | None = None,
    ) -> Detector:
        """Load a model directory (``ModelDirError`` if unusable, ``UnknownNameError`` for an engine).

        A frame model (``kind: frame``) gives a ``frame_detector.FrameDetector``.
        """
        options = options or DetectOptions()
        options.validate()
        if model_dir_kind(model_dir) == "frame":
            from deepfake_detect.inference.frame_detector import FrameDetector

            return FrameDetector.load_frame(model_dir, engine=engine, device=device, options=options)
        built = create_engine(
            engine, model_dir, device=device, precision=options.precision, channels_last=options.channels_last
        )
        return cls(built, options, model_dir=model_dir, engine_name=engine, device=device)

    @property
    def face_detector(self) -> FaceDetector:
        """The model's face detector, on this Detector's device (``--device cuda`` moves MTCNN too)."""
        if self._face_detector is None:
            faces = self.settings.faces.model_copy(update={"device": self.device})
            self._face_detector = create_face_detector(faces)
        return self._face_detector

    def detect(self, path: Path | str) -> VideoResult:
        """Analyse one video in this process (streaming; never raises for bad input)."""
        start = time.perf_counter()
        try:
            return analyze_video(Path(path), self.engine, self.face_detector, self.settings)
        except VideoError as exc:
            return failure_result(path, exc, time.perf_counter() - start)
        except Exception as exc:  # a corrupt file can trip any library on the way
            logger.exception("%s: unexpected error while analysing the video", path)
            return VideoResult.failed(
                str(path),
                VideoStatus.UNDECODABLE,
                f"unexpected error while reading the video ({type(exc).__name__}: {exc})",
                timings={"total": time.perf_counter() - start},
            )

    def warm_up(self) -> None:
        """Load the face detector's networks and run the engine once, so that timings show per-video work."""
        self.face_detector.detect(np.zeros((64, 64, 3), dtype=np.uint8))
        self.engine.embed(np.zeros((1, 64, 64, 3), dtype=np.uint8))

    def model_info(self) -> dict[str, Any]:
        """The model and the settings in use (the ``model`` object of the detect JSON)."""
        config, settings = self.engine.config, self.settings
        card = sequence_card(config.card, config.format_version, config.backbone)
        return {
            "path": str(self.model_dir) if self.model_dir is not None else None,
            "engine": self.engine_name,
            "device": self.device,
            "precision": getattr(self.engine, "precision", None),
            "backbone": config.backbone,
            "embed_dim": config.embed_dim,
            "input_size": config.input_size,
            "head": config.head,
            "head_kwargs": dict(config.head_kwargs),
            "threshold": settings.threshold,
            "temperature": config.temperature,
            "aggregation": settings.aggregation,
            "frame_stride": settings.frame_stride,
            "clip_len": settings.clip_len,
            "min_clip_len": settings.min_clip_len,
            "timeline_window": settings.timeline_window,
            "timeline_hop": settings.timeline_hop,
            "max_frames": self.options.max_frames,
            "face_detector": settings.faces.detector,
            "faces": settings.faces.model_dump(mode="json"),
            "created": config.created,
            "package_version": config.package_version,
            "kind": "sequence",
            "card": card,
            "warnings": card["warnings"],
        }

    def detect_many(
        self,
        paths: Iterable[Path | str],
        workers: int = 1,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        memory_mb: int | None = None,
        *,
        threads: int | None = None,
        task: Callable[[str], VideoResult] | None = None,
        cluster: str | None = None,
    ) -> Iterator[VideoResult]:
        """Analyse each path in a child process; results come in completion order (``result.path``).

        Each worker loads the model once. A worker that crashes on a file makes that file
        ``undecodable``; one that runs past ``timeout_s`` or above ``memory_mb`` (resident) makes it
        ``too_large``; the other files go on. ``threads``: torch threads per worker (default: cores //
        workers). ``task`` replaces the function run per path in the worker
        (a module-level function; it may call :func:`worker_detector`), e.g. to inject faults in tests.
        Raises ``isolation.IsolationError`` when the workers cannot start (e.g. the model does not load).
        ``cluster`` (``local:N`` or ``tcp://host:port``) runs one Dask task per path instead, each in an
        isolated child of its Dask worker with the same limits (``workers`` is then ignored; paths must
        be readable at the same path on every worker); raises ``cluster.ClusterError`` if unreachable.
        """
        if self.model_dir is None:
            raise ValueError(
                "detect_many needs a Detector made with Detector.load (workers reload the model)"
            )
        spec = WorkerSpec(
            str(self.model_dir.absolute()),
            self.engine_name,
            self.device,
            self.options,
            threads=threads or max(1, (os.cpu_count() or 1) // _local_workers(workers, cluster)),
        )
        for item, outcome in _outcomes(
            spec, task or detect_in_worker, paths, workers, timeout_s, memory_mb, cluster
        ):
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
) -> Iterator[tuple[str, VideoResult | WorkerFailure]]:
    if cluster is not None:
        from deepfake_detect.cluster import PoolSpec, map_isolated

        pool_spec = PoolSpec(init_worker, (spec,), timeout_s, memory_mb)
        resources = {"GPU": 1.0} if spec.device.startswith("cuda") else None  # one video per GPU at a time
        paths_text = (str(p) for p in paths)
        yield from map_isolated(
            cluster, task, paths_text, pool_spec, key=lambda p: Path(p).name, resources=resources
        )
        return
    pool = IsolatedPool(
        workers, initializer=init_worker, initargs=(spec,), timeout_s=timeout_s, memory_mb=memory_mb
    )
    with pool:
        yield from pool.imap_unordered(task, (str(p) for p in paths))


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to rebuild the Detector (picklable)."""

    model_dir: str
    engine: str
    device: str
    options: DetectOptions
    threads: int


_WORKER: dict[str, Detector] = {}  # the Detector of this worker process


def init_worker(spec: WorkerSpec) -> None:
    """IsolatedPool initializer: limit threads and load the Detector once for this process."""
    import cv2
    import torch

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


def worker_failure_result(path: str, failure: WorkerFailure) -> VideoResult:
    """The result for a file whose worker died, hung or blew its memory limit."""
    if failure.kind == "timeout" or "memory" in failure.message.lower():
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
