"""Preprocess a dataset into a clip store: parallel, resumable, shardable (SPEC §3 'Stores').

The main process hands videos to an :class:`~deepfake_detect.infra.isolation.IsolatedPool` of long-lived
workers (each loads its face detector once, in the pool initializer). A worker writes a video's crops
into ``OUT/.tmp/<video_key>-<pid>/`` and returns the rows; the main process publishes them with
:meth:`ClipStore.write_video_rows` (rename the folder, then write ``rows/<video_key>.json``, the done
marker). ``manifest.csv`` is rebuilt from all rows files at the end, so shards can share one OUT folder.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_detect.config import Config
from deepfake_detect.data.store import ClipStore, failure_row, video_key
from deepfake_detect.faces import FACE_DETECTORS
from deepfake_detect.infra.isolation import IsolatedPool, WorkerFailure
from deepfake_detect.preprocess.process import process_video
from deepfake_detect.types import ClipRow, VideoRecord, VideoStatus

logger = logging.getLogger(__name__)


class PreprocessError(ValueError):
    """Preprocessing cannot start as asked (bad shard, clashing video ids, a store made otherwise)."""


@dataclass(frozen=True)
class PreprocessProgress:
    """Where a run stands; given to the progress callback at the start and after every video."""

    total: int  # videos this run processes (skipped ones excluded)
    done: int
    clips: int
    failures: int
    skipped: int
    video_id: str | None = None
    status: str | None = None


ProgressCallback = Callable[[PreprocessProgress], None]


@dataclass(frozen=True)
class PreprocessSummary:
    """Outcome over the selected videos (this shard, after ``limit``), including ones done before."""

    selected: int
    processed: int
    skipped: int
    status_counts: dict[str, int]
    clips: int
    elapsed_s: float
    manifest_path: Path
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (video_id, status, error)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> (i, N) with 0 <= i < N (0-based, like ``$SLURM_ARRAY_TASK_ID`` for ``--array=0-N-1``)."""
    index, _, count = text.partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError:
        raise PreprocessError(f"shard {text!r} is not of the form i/N (e.g. 0/4)") from None
    check_shard(shard)
    return shard


def check_shard(shard: tuple[int, int]) -> None:
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise PreprocessError(f"shard {index}/{count}: need N >= 1 and 0 <= i < N")


def shard_of(video_id: str, count: int) -> int:
    """The shard a video belongs to: a hash that is stable across machines and Python runs."""
    return zlib.crc32(video_id.encode("utf-8")) % count


def select_records(
    records: Sequence[VideoRecord], shard: tuple[int, int] | None = None, limit: int | None = None
) -> list[VideoRecord]:
    """This shard's records sorted by video_id, the first ``limit`` of them; refuses clashing ids."""
    seen: dict[str, str] = {}
    for record in records:
        key = video_key(record.video_id)
        if key in seen:
            if seen[key] == record.video_id:
                raise PreprocessError(f"video id {record.video_id!r} is listed more than once")
            raise PreprocessError(
                f"video ids {seen[key]!r} and {record.video_id!r} map to the same store key"
            )
        seen[key] = record.video_id
    chosen = sorted(records, key=lambda r: r.video_id)
    if shard is not None:
        check_shard(shard)
        chosen = [r for r in chosen if shard_of(r.video_id, shard[1]) == shard[0]]
    if limit is not None:
        if limit < 0:
            raise PreprocessError(f"limit must be >= 0, got {limit}")
        chosen = chosen[:limit]
    return chosen


def store_settings(config: Config) -> dict[str, Any]:
    """The settings that decide the crops and clips; a store refuses to mix in crops made otherwise."""
    # detect_every=1 is left out so that stores made before the option existed stay valid; detect_batch
    # changes how many frames are detected per call, not the crops
    exclude = {"device", "detect_batch"} | ({"detect_every"} if config.faces.detect_every == 1 else set())
    exclude |= set() if config.faces.tracked else {"tracked", "full_scan_every"}  # likewise (new keys)
    faces = config.faces.model_dump(mode="json", exclude=exclude)
    return {
        "faces": faces,
        "frame_stride": config.clips.frame_stride,
        "clip_len": config.clips.clip_len,
        "jpeg_quality": config.preprocess.jpeg_quality,
        "max_pixels": config.preprocess.max_pixels,
        "max_frames": config.preprocess.max_frames,
    }


# -- worker side (module-level so that the pool can pickle them) -------------------------------------
_WORKER: dict[str, Any] = {}


def _limit_threads(threads: int) -> None:
    """Share the CPU cores between workers (oversubscribed torch threads are many times slower)."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)  # read by torch / BLAS when they are first imported
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(threads)


def _init_worker(config_data: dict[str, Any]) -> None:
    """Pool initializer: build the config and load the face detector once per worker process."""
    from deepfake_detect.faces import create_face_detector

    config = Config.model_validate(config_data)
    _limit_threads(config.preprocess.threads_per_worker)
    detector = create_face_detector(config.faces)
    detector.detect(np.zeros((64, 64, 3), np.uint8))  # load lazily built models now, not in the 1st video
    _limit_threads(config.preprocess.threads_per_worker)
    _WORKER["config"] = config
    _WORKER["detector"] = detector


@dataclass(frozen=True)
class _Task:
    record: VideoRecord
    store_root: Path


def _run_task(task: _Task) -> tuple[list[ClipRow], Path]:
    work_dir = ClipStore(task.store_root).work_dir(task.record.video_id)
    rows = process_video(task.record, _WORKER["config"], _WORKER["detector"], work_dir=work_dir)
    return rows, work_dir


# -- main side ----------------------------------------------------------------------------------------
def _publish(
    store: ClipStore, task: _Task, result: tuple[list[ClipRow], Path] | WorkerFailure
) -> tuple[str, int]:
    """Write one finished video into the store; returns its status and number of clips."""
    record = task.record
    if isinstance(result, WorkerFailure):
        store.remove_stale([record.video_id])  # the dead worker's half-written work folder
        message = f"worker {result.kind}: {result.message}"
        rows = [failure_row(record, VideoStatus.UNDECODABLE, message)]
        store.write_video_rows(record.video_id, rows)
    else:
        rows, work_dir = result
        store.write_video_rows(record.video_id, rows, work_dir)
    status: str = rows[0].status.value
    if status != VideoStatus.OK.value:
        logger.debug("%s: %s (%s)", record.video_id, status, rows[0].error)
        return status, 0
    return status, len(rows)


def _summarise(
    store: ClipStore, selected: Sequence[VideoRecord], processed: int, elapsed: float
) -> PreprocessSummary:
    frame = store.manifest()
    ids = {r.video_id for r in selected}
    mine = frame[frame["video_id"].isin(ids)]
    first = mine.drop_duplicates("video_id")
    failed = first[first["status"] != VideoStatus.OK.value]
    return PreprocessSummary(
        selected=len(selected),
        processed=processed,
        skipped=len(selected) - processed,
        status_counts={str(k): int(v) for k, v in first["status"].value_counts().sort_index().items()},
        clips=int((mine["status"] == VideoStatus.OK.value).sum()),
        elapsed_s=elapsed,
        manifest_path=store.manifest_path,
        failures=list(zip(failed["video_id"], failed["status"], failed["error"], strict=True)),
    )


def preprocess_dataset(
    records: Sequence[VideoRecord],
    out: Path,
    config: Config,
    *,
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    limit: int | None = None,
    progress: ProgressCallback | None = None,
    cluster: str | None = None,
) -> PreprocessSummary:
    """Turn videos into face-crop clips in the store at ``out``; videos done before are skipped.

    Killed at any moment and run again, it ends with the same store as an uninterrupted run.
    ``cluster`` (``local:N`` or a scheduler's ``tcp://host:port``) runs one Dask task per video
    instead of ``workers`` local processes (:mod:`deepfake_detect.cluster`): the Dask workers write
    crops into ``out``'s work folders, so ``out`` must be a folder every worker sees at the same path;
    this process publishes each finished video (its rows file) as its result arrives.
    """
    start = time.monotonic()
    if workers < 1:
        raise PreprocessError(f"workers must be >= 1, got {workers}")
    FACE_DETECTORS.get(config.faces.detector)  # an unknown name fails here, not in every worker
    selected = select_records(records, shard, limit)
    store = ClipStore(out)
    store.ensure_settings(store_settings(config))
    store.remove_stale([r.video_id for r in selected])
    todo = [r for r in selected if not store.is_done(r.video_id)]
    skipped = len(selected) - len(todo)
    logger.info("%d videos selected, %d done before, %d to process", len(selected), skipped, len(todo))
    state = PreprocessProgress(total=len(todo), done=0, clips=0, failures=0, skipped=skipped)
    if progress is not None:
        progress(state)
    if todo:
        state = _run_pool(store, todo, config, workers, state, progress, cluster)
    store.remove_stale([r.video_id for r in selected])
    store.consolidate()
    return _summarise(store, selected, len(todo), time.monotonic() - start)


def _run_pool(
    store: ClipStore,
    todo: Sequence[VideoRecord],
    config: Config,
    workers: int,
    state: PreprocessProgress,
    progress: ProgressCallback | None,
    cluster: str | None,
) -> PreprocessProgress:
    # absolute paths: a Dask worker may run in another folder (or machine, with the same shared mounts)
    tasks = [_Task(replace(r, path=r.path.absolute()), store.root.absolute()) for r in todo]
    for task, result in _results(tasks, config, workers, cluster):
        status, clips = _publish(store, task, result)
        state = PreprocessProgress(
            total=state.total,
            done=state.done + 1,
            clips=state.clips + clips,
            failures=state.failures + (status != VideoStatus.OK.value),
            skipped=state.skipped,
            video_id=task.record.video_id,
            status=status,
        )
        if progress is not None:
            progress(state)
    return state


def _results(
    tasks: Sequence[_Task], config: Config, workers: int, cluster: str | None
) -> Iterator[tuple[_Task, tuple[list[ClipRow], Path] | WorkerFailure]]:
    """Each task's outcome in completion order, from local isolated workers or a Dask cluster."""
    initargs = (config.model_dump(mode="json"),)
    timeout_s, memory_mb = config.preprocess.timeout_s, config.preprocess.memory_mb
    if cluster is not None:
        from deepfake_detect.cluster import PoolSpec, map_isolated

        spec = PoolSpec(_init_worker, initargs, timeout_s, memory_mb)
        yield from map_isolated(cluster, _run_task, tasks, spec, key=lambda t: video_key(t.record.video_id))
        return
    with IsolatedPool(min(workers, len(tasks)), _init_worker, initargs, timeout_s, memory_mb) as pool:
        yield from pool.imap_unordered(_run_task, tasks)
