"""Make sure an experiment has its clip store: generate the synthetic set and/or preprocess the videos.

Sources, in this order of precedence (``data`` section of the config):

- ``data.synth``: the built-in synthetic benchmark (SPEC §6) is generated into ``OUT/synth`` (reused when it
  is already there with the same settings) and read with the ``dfdc`` layout;
- ``data.root``: a dataset read with ``data.layout``;
- neither: ``data.clips_dir`` must already hold a clip store.

Videos are preprocessed into ``data.clips_dir`` (default ``OUT/clips``); videos done before are skipped, so
an interrupted run continues where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepfake_detect.config import Config, SynthConfig
from deepfake_detect.data.layouts import load_dataset
from deepfake_detect.data.store import ClipStore
from deepfake_detect.data.synth import generate_dataset
from deepfake_detect.experiment.environment import tree_digest
from deepfake_detect.infra.runtime import cpu_seconds
from deepfake_detect.preprocess import PreprocessProgress, PreprocessSummary, preprocess_dataset
from deepfake_detect.types import VideoRecord

logger = logging.getLogger(__name__)

StageCallback = Callable[[str, int, int], None]


class DataPreparationError(ValueError):
    """The config names no usable data (no synth, root or clip store) or clashes with what is on disk."""


@dataclass
class PreparedData:
    """The clip store to experiment on, and how long making it took (stage -> seconds)."""

    store: ClipStore
    videos: int | None
    summary: PreprocessSummary | None
    timings: dict[str, float] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)  # what -> experiment.environment.tree_digest
    cpu_timings: dict[str, float] = field(default_factory=dict)  # stage -> CPU seconds
    records: list[VideoRecord] = field(default_factory=list)  # the videos the clips were cut from


def _synth_settings(synth: SynthConfig, seed: int) -> dict[str, object]:
    return {
        "videos": synth.videos,
        "frames": synth.frames,
        "size": [synth.width, synth.height],
        "fps": synth.fps,
        "track": synth.track,
        "seed": seed,
        "jitter": synth.jitter,
    }


def _check_existing_synth(folder: Path, wanted: dict[str, object]) -> None:
    info = folder / "synth.json"
    have = json.loads(info.read_text(encoding="utf-8")).get("settings", {}) if info.is_file() else {}
    differ = [k for k, v in wanted.items() if have.get(k) != v]
    if differ:
        raise DataPreparationError(
            f"{folder} already holds a synthetic dataset made with other settings ({', '.join(differ)}); "
            "use a new output folder"
        )


def make_synth(
    config: Config,
    folder: Path,
    progress: StageCallback | None = None,
    *,
    name: str = "synth",
    seed: int | None = None,
) -> list[VideoRecord]:
    """Generate (or reuse) the synthetic dataset of ``config.data.synth`` in ``folder``; its records
    (``seed``: the generator's seed, default data.synth.seed or the top-level seed)."""
    synth = config.data.synth
    if synth is None:
        raise DataPreparationError("config.data.synth is not set")
    if seed is None:
        seed = config.seed if synth.seed is None else synth.seed
    if (folder / "metadata.json").is_file():
        _check_existing_synth(folder, _synth_settings(synth, seed))
        logger.info("reusing the synthetic dataset in %s", folder)
    else:

        def tick(done: int) -> None:
            if progress is not None:
                progress("generate synthetic videos", done, synth.videos)

        generate_dataset(
            folder,
            videos=synth.videos,
            seed=seed,
            track=synth.track,
            size=(synth.width, synth.height),
            frames=synth.frames,
            fps=synth.fps,
            progress=tick,
            jitter=synth.jitter,
        )
    return load_dataset("dfdc", folder, name=name).records


def synth_folders(config: Config, out_dir: Path) -> list[tuple[Path, str, int]]:
    """(folder, dataset name, generator seed) of each synthetic replication: ``OUT/synth`` for one,
    ``OUT/synth/rep<k>`` (dataset ``synth-<k>``, seed + k) for several."""
    synth = config.data.synth
    if synth is None:
        return []
    seed = config.seed if synth.seed is None else synth.seed
    if synth.replications == 1:
        return [(out_dir / "synth", "synth", seed)]
    return [(out_dir / "synth" / f"rep{k}", f"synth-{k}", seed + k) for k in range(synth.replications)]


def _records(config: Config, out_dir: Path, progress: StageCallback | None) -> list[VideoRecord] | None:
    if config.data.synth is not None:
        records: list[VideoRecord] = []
        for folder, name, seed in synth_folders(config, out_dir):
            records += make_synth(config, folder, progress, name=name, seed=seed)
        return records
    if config.data.root is not None:
        return load_dataset(config.data.layout, config.data.root).records
    return None


def prepare_clips(config: Config, out_dir: Path, *, progress: StageCallback | None = None) -> PreparedData:
    """The experiment's clip store, generated and preprocessed as needed (see the module docstring)."""
    out_dir = Path(out_dir)
    clips_dir = config.data.clips_dir or out_dir / "clips"
    timings: dict[str, float] = {}
    cpu_timings: dict[str, float] = {}
    start, cpu = time.perf_counter(), cpu_seconds()
    records = _records(config, out_dir, progress)
    digests: dict[str, str] = {}
    if config.data.synth is not None:
        timings["synthesise videos"] = time.perf_counter() - start
        cpu_timings["synthesise videos"] = cpu_seconds() - cpu
        digests["synthetic videos"] = tree_digest(out_dir / "synth")
    store = ClipStore(clips_dir)
    if records is None:
        if not (store.manifest_path.is_file() or store.rows_root.is_dir()):
            raise DataPreparationError(
                f"no data: set data.root (videos), data.synth (the built-in synthetic set) or data.clips_dir "
                f"(a clip store; {clips_dir} holds none)"
            )
        return PreparedData(store, None, None, timings, digests, cpu_timings)

    def on_video(state: PreprocessProgress) -> None:
        if progress is not None:
            progress("preprocess videos (faces -> clips)", state.done, state.total)

    start, cpu = time.perf_counter(), cpu_seconds()
    summary = preprocess_dataset(
        records, clips_dir, config, workers=config.preprocess.workers, progress=on_video
    )
    timings["preprocess videos"] = time.perf_counter() - start
    cpu_timings["preprocess videos"] = cpu_seconds() - cpu
    logger.info(
        "preprocessed %d videos into %d clips (%s)",
        summary.selected,
        summary.clips,
        ", ".join(f"{k}: {v}" for k, v in summary.status_counts.items()),
    )
    return PreparedData(store, len(records), summary, timings, digests, cpu_timings, list(records))


def robustness_rows(
    config: Config, prepared: PreparedData, result: Any, out_dir: Path
) -> list[dict[str, Any]]:
    """experiment.robustness: repetition 0's test videos re-encoded and scored again (else [])."""
    if not config.experiment.robustness or result.rep0_model is None or not prepared.records:
        return []
    from deepfake_detect.experiment.robustness import robustness_table

    extractor, head, _, split = result.rep0_model
    return robustness_table(
        config, prepared.records, sorted(set(split.test["video_id"])), extractor, head, out_dir / "robustness"
    )
