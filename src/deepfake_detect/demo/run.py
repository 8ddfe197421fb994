"""The demo (SPEC §1): synthetic videos -> clips -> the paper's experiment -> report and a usable model.

``run_demo(out)`` generates the built-in temporal benchmark (SPEC §6) into ``out/synth``, preprocesses it
into ``out/clips``, runs :func:`experiment.runner.run_experiment` with the packaged ``demo.yaml`` into
``out/report`` and writes the final model (repetition 0's extractor + LSTM) to ``out/model``. The model's
path is recorded in the user's cache folder (:func:`inference.last_model.record_last_model`) so that
``detect`` without ``--model`` finds the model that the demo trained last.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from deepfake_detect.config import Config, ConfigError, load_config
from deepfake_detect.experiment.cross_track import cross_track_rows
from deepfake_detect.experiment.prepare import StageCallback, prepare_clips, robustness_rows
from deepfake_detect.experiment.report import write_report
from deepfake_detect.experiment.runner import run_experiment
from deepfake_detect.inference.last_model import last_model_path, last_model_pointer, record_last_model

logger = logging.getLogger(__name__)

__all__ = [
    "DemoResult",
    "demo_config",
    "last_model_path",
    "last_model_pointer",
    "packaged_config",
    "record_last_model",
    "run_demo",
]

DEMO_CONFIG = "demo.yaml"
PAPER_CONFIG = "paper.yaml"


def packaged_config(name: str) -> Path:
    """Path of a config shipped inside the package (``demo.yaml``, ``paper.yaml``)."""
    path = Path(str(resources.files("deepfake_detect").joinpath("configs", name)))
    if not path.is_file():
        raise ConfigError(f"no packaged config named {name!r} (looked in {path.parent})")
    return path


@dataclass
class DemoResult:
    """Where the demo wrote things, its report payload and its wall time per stage (seconds)."""

    out_dir: Path
    report_dir: Path
    model_dir: Path
    pointer: Path
    report: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return sum(self.timings.values())


def demo_config(
    videos: int | None = None, seed: int | None = None, overrides: list[str] | None = None
) -> Config:
    """The packaged demo config with ``--videos`` / ``--seed`` and ``--set`` overrides applied."""
    extra = list(overrides or [])
    if videos is not None:
        extra.append(f"data.synth.videos={videos}")
    if seed is not None:
        extra.append(f"seed={seed}")
    config = load_config(packaged_config(DEMO_CONFIG), extra)
    if config.data.synth is None:
        raise ConfigError("the demo needs data.synth (the built-in synthetic dataset)")
    return config


def _group_timings(experiment: dict[str, float]) -> dict[str, float]:
    """Experiment stage timings grouped into readable demo stages."""
    groups: dict[str, float] = {}
    for kind, seconds in experiment.items():
        name = {
            "extractor": "train extractors",
            "embed": "embed clips",
            "head": "train + evaluate heads",
        }.get(kind.split(":")[0], kind)
        groups[name] = groups.get(name, 0.0) + seconds
    return groups


def run_demo(
    out: Path,
    *,
    videos: int | None = None,
    seed: int | None = None,
    overrides: list[str] | None = None,
    progress: StageCallback | None = None,
) -> DemoResult:
    """Run the whole demo into ``out`` (see the module docstring); reruns reuse finished data."""
    out = Path(out)
    config = demo_config(videos, seed, overrides)
    prepared = prepare_clips(config, out, progress=progress)
    report_dir, model_dir = out / "report", out / "model"
    start = time.perf_counter()
    result = run_experiment(
        config,
        prepared.store,
        report_dir,
        model_dir=model_dir,
        progress=progress,
        data_digests=prepared.digests,
    )
    timings = dict(prepared.timings)
    timings.update(_group_timings(result.timings))
    timings["experiment (other)"] = max(0.0, time.perf_counter() - start - sum(result.timings.values()))
    start = time.perf_counter()
    cpu = dict(prepared.cpu_timings)
    cpu.update(_group_timings(result.cpu_timings))
    extra: dict[str, Any] = {
        "demo_timings_s": {k: round(v, 2) for k, v in timings.items()},
        "demo_cpu_s": {k: round(v, 2) for k, v in cpu.items()},
    }
    robustness = robustness_rows(config, prepared, result, out)
    if robustness:
        extra["robustness"] = robustness
    if cross := cross_track_rows(config, prepared.store, result, out):
        extra["cross_track"] = cross
    payload = write_report(result, report_dir, extra=extra)
    timings["report"] = time.perf_counter() - start
    pointer = record_last_model(model_dir)
    logger.info("demo finished in %.0f s; report %s, model %s", sum(timings.values()), report_dir, model_dir)
    return DemoResult(out, report_dir, model_dir, pointer, payload, timings)
