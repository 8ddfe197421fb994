"""A :class:`WorkerDetector`: ``detect_many`` for a model that this process never loads.

``detect``'s parent only hands files to isolated workers (local ones or a Dask cluster's), so it reads
``config.json`` (no torch, no weights) and the workers import torch and load the model once each. Its
``model_info()`` is the same object as ``Detector.model_info()``; a sequence model's precision comes from
the first worker ready (it depends on the CPU or GPU and on the warm-up); a frame model's members report
theirs per video.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from deepfake_detect.inference.model_card import frame_model_info, sequence_model_info
from deepfake_detect.inference.options import DetectOptions, Settings, resolve
from deepfake_detect.inference.results import VideoResult
from deepfake_detect.inference.workers import (
    DEFAULT_TIMEOUT_S,
    WorkerSpec,
    first_worker_precision,
    run_in_workers,
    worker_spec,
)
from deepfake_detect.models.dir_config import (
    ONNX_SECTION,
    ModelDirConfig,
    ModelDirError,
    model_dir_kind,
    read_model_config,
)
from deepfake_detect.models.frame_config import FrameModelConfig, read_frame_model_config

__all__ = ["WORKER_ENGINES", "WorkerDetector"]

WORKER_ENGINES = ("torch", "onnx")  # engines whose model the parent can describe from config.json


class WorkerDetector:
    """A model directory (sequence or frame) run with the torch or onnx engine in worker processes only."""

    def __init__(
        self,
        model_dir: Path | str,
        config: ModelDirConfig | FrameModelConfig,
        options: DetectOptions,
        *,
        engine: str = "torch",
        device: str = "cpu",
    ) -> None:
        self.model_dir = Path(model_dir)
        self.config = config
        self.options = options
        if isinstance(config, ModelDirConfig):
            self.settings: Settings | None = resolve(options, config, device)  # validates the options
        else:
            options.validate()
            self.settings = None
        self.engine_name = engine
        self.device = device
        self.precision: str | None = None  # set by the first worker ready (None for an onnx engine)
        self._precision_known = False

    @classmethod
    def open(
        cls,
        model_dir: Path | str,
        *,
        engine: str = "torch",
        device: str = "cpu",
        options: DetectOptions | None = None,
    ) -> WorkerDetector:
        """Read and check ``config.json`` (``ModelDirError``; ``ValueError`` for options that do not fit).

        ``engine``: "torch" (any model directory) or "onnx" (an exported one, whose graph files its
        workers check when they load it). The workers report any other problem of the model.
        """
        if engine not in WORKER_ENGINES:
            raise ValueError(f"WorkerDetector runs the {' or '.join(WORKER_ENGINES)} engine, not {engine!r}")
        options = options or DetectOptions()
        if model_dir_kind(model_dir) == "frame":
            frame = read_frame_model_config(model_dir, weights=engine == "torch")
            if engine == "onnx" and ONNX_SECTION not in frame.extra:
                raise ModelDirError(
                    f"{model_dir} has no ONNX export: run "
                    f"`deepfake-detect export --model {model_dir} --format onnx OUT` first"
                )
            return cls(model_dir, frame, options, engine=engine, device=device)
        config = read_model_config(model_dir, weights=engine == "torch")
        return cls(model_dir, config, options, engine=engine, device=device)

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
        """As :meth:`Detector.detect_many` (``isolation.IsolationError`` when the model does not load)."""
        spec = self._spec(threads, workers, cluster)
        yield from run_in_workers(
            spec, task, paths, workers, timeout_s, memory_mb, cluster, on_precision=self._set_precision
        )

    def model_info(self) -> dict[str, Any]:
        """The ``model`` object of the detect JSON, identical to ``Detector.model_info()``."""
        if isinstance(self.config, FrameModelConfig):
            return frame_model_info(
                self.config, self.options, path=self.model_dir, device=self.device, engine=self.engine_name
            )
        assert self.settings is not None  # resolved for every sequence model
        if not self._precision_known:  # no worker has answered yet: ask one
            self._set_precision(first_worker_precision(self._spec(None, 1, None)))
        return sequence_model_info(
            self.config,
            self.settings,
            path=self.model_dir,
            engine=self.engine_name,
            device=self.device,
            precision=self.precision,
        )

    def _spec(self, threads: int | None, workers: int, cluster: str | None) -> WorkerSpec:
        return worker_spec(
            self.model_dir, self.engine_name, self.device, self.options, threads, workers, cluster
        )

    def _set_precision(self, precision: str | None) -> None:
        self.precision, self._precision_known = precision, True
