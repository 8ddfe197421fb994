"""The :class:`Detector` facade: a model directory in, a :class:`VideoResult` per video out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_detect.faces import FaceDetector, create_face_detector
from deepfake_detect.inference.analyze import analyze_video, failure_result
from deepfake_detect.inference.engine import Engine, create_engine
from deepfake_detect.inference.model_card import sequence_model_info
from deepfake_detect.inference.options import DetectOptions, resolve
from deepfake_detect.inference.results import VideoResult
from deepfake_detect.inference.workers import (
    DEFAULT_TIMEOUT_S,
    WorkerSpec,
    detect_in_worker,
    init_worker,
    run_in_workers,
    worker_detector,
    worker_failure_result,
    worker_spec,
)
from deepfake_detect.models.dir_config import model_dir_kind
from deepfake_detect.types import VideoStatus
from deepfake_detect.video import VideoError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "Detector",
    "WorkerSpec",
    "detect_in_worker",
    "init_worker",
    "worker_detector",
    "worker_failure_result",
]


class Detector:
    """Deepfake verdicts for videos with one loaded model.

    ``detect(path)`` runs in this process and never raises for a bad file (the result carries the
    status and an error sentence). ``detect_many`` runs each file in a child process
    (:class:`~deepfake_detect.infra.isolation.IsolatedPool`) so that a decoder crash, a hang or a memory
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
        """Load a model directory (``ModelDirError`` if unusable, ``UnknownNameError`` for an engine,
        ``ValueError`` for options that do not fit: checked once, by ``options.resolve``).

        A frame model (``kind: frame``) gives a ``frame_detector.FrameDetector``.
        """
        options = options or DetectOptions()
        if model_dir_kind(model_dir) == "frame":
            options.validate()  # a frame model has its own recipe: nothing to resolve
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
            return self._analyze(Path(path))
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

    def _analyze(self, path: Path) -> VideoResult:
        """One video through the model's pipeline (raises ``VideoError`` for unreadable files)."""
        return analyze_video(path, self.engine, self.face_detector, self.settings)

    def warm_up(self) -> None:
        """Load the face detector's networks and run the engine once, so that timings show per-video work."""
        self.face_detector.detect(np.zeros((64, 64, 3), dtype=np.uint8))
        self.engine.embed(np.zeros((1, 64, 64, 3), dtype=np.uint8))

    def model_info(self) -> dict[str, Any]:
        """The model and the settings in use (the ``model`` object of the detect JSON)."""
        return sequence_model_info(
            self.engine.config,
            self.settings,
            path=self.model_dir,
            engine=self.engine_name,
            device=self.device,
            precision=getattr(self.engine, "precision", None),
        )

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
        spec = worker_spec(
            self.model_dir, self.engine_name, self.device, self.options, threads, workers, cluster
        )
        yield from run_in_workers(spec, task, paths, workers, timeout_s, memory_mb, cluster)
