"""Benchmark 7: the Dask cluster's cost: preprocess with ``cluster="local:2"`` vs ``workers=2`` (target:
at least 0.9x the videos/min), and the sustained rate of no-op video tasks (target: at least 100/s).

Throughput: ``preprocess_dataset`` with the demo settings on the same 16 synthetic videos (as benchmark
5), into a fresh store each time; end to end, so the cluster's start-up (scheduler, 2 worker processes,
then each worker's isolated child) is included. Rate: N no-op tasks through the whole per-video path
(``cluster.map_isolated``: a Dask task, this worker's cached isolated child, the result back to the
client), timed from the first result to the last, so start-up is excluded; from it, the coordination
time a 119,000-video run (DFDC) would pay with 2 workers.
"""

from __future__ import annotations

import importlib
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import arguments, host, inputs, recording, timing
from deepfake_detect.cluster import PoolSpec, map_isolated
from deepfake_detect.preprocess import PreprocessProgress, preprocess_dataset
from deepfake_detect.types import VideoRecord

THROUGHPUT_TARGET = 0.9
RATE_TARGET = 100.0
DFDC_VIDEOS = 119_000


def noop(item: int) -> int:
    """A stub video task: returns at once."""
    return item


def preprocess_rate(records: Sequence[VideoRecord], **how: Any) -> dict[str, Any]:
    finished: list[float] = []

    def progress(state: PreprocessProgress) -> None:
        if state.video_id is not None:
            finished.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        with timing.quiet_logs():
            summary = preprocess_dataset(records, Path(out), inputs.demo_config(), progress=progress, **how)
        elapsed = time.perf_counter() - start
    steady = (len(finished) - 1) / (finished[-1] - finished[0]) if len(finished) > 1 else float("nan")
    return {
        "videos": len(records),
        "elapsed_s": elapsed,
        "videos_per_min": 60.0 * len(records) / elapsed,
        "steady_videos_per_min": 60.0 * steady,
        "first_done_s": finished[0] - start if finished else float("nan"),
        "statuses": summary.status_counts,
    }


def task_rate(tasks: int) -> dict[str, Any]:
    # by reference from the importable module, not this ``python -m`` __main__ copy (the isolated child
    # unpickles the function by name)
    fn = importlib.import_module("benchmarks.cluster_overhead").noop
    finished: list[float] = []
    start = time.perf_counter()
    with timing.quiet_logs():
        for item, outcome in map_isolated("local:2", fn, range(tasks), PoolSpec(None, (), 60.0, None)):
            if outcome != item:
                raise RuntimeError(f"no-op task {item} failed: {outcome}")
            finished.append(time.perf_counter())
    rate = (len(finished) - 1) / (finished[-1] - finished[0])
    return {
        "tasks": tasks,
        "tasks_per_s": rate,
        "start_up_s": finished[0] - start,
        "ms_per_task": 1000.0 / rate,
        "dfdc_overhead_min": DFDC_VIDEOS / rate / 60.0,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = arguments.parser(__doc__ or "")
    p.add_argument("--videos", type=int, default=16)
    p.add_argument("--tasks", type=int, default=20_000)
    args = arguments.parse(p, argv)
    start = host.machine()
    (videos, frames), tasks = ((2, 30), 200) if args.quick else ((args.videos, 72), args.tasks)
    records = inputs.synth_records(args.cache, videos, frames)
    local = preprocess_rate(records, workers=2)
    cluster = preprocess_rate(records, cluster="local:2")
    rate = task_rate(tasks)
    ratios = [
        recording.Ratio(
            "cluster_overhead",
            "preprocess, end to end (start-up included)",
            cluster["videos_per_min"] / local["videos_per_min"],
            THROUGHPUT_TARGET,
            "at_least",
            "videos/min with --cluster local:2 / with --workers 2",
            {"--workers 2": local, "--cluster local:2": cluster},
        ),
        recording.Ratio(
            "cluster_overhead",
            "preprocess, steady state (after the first video)",
            cluster["steady_videos_per_min"] / local["steady_videos_per_min"],
            THROUGHPUT_TARGET,
            "at_least",
            "videos/min with --cluster local:2 / with --workers 2",
        ),
        recording.Ratio(
            "cluster_overhead",
            f"{tasks} no-op tasks on local:2",
            rate["tasks_per_s"],
            RATE_TARGET,
            "at_least",
            f"tasks/s sustained; a {DFDC_VIDEOS}-video run pays {rate['dfdc_overhead_min']:.1f} min of it",
            {"no-op tasks": rate},
        ),
    ]
    notes = [
        f"{videos} synthetic videos of {frames} frames, demo settings, as benchmark 5; each task of the"
        " rate goes through a Dask worker and its isolated child (two pickles and pipes per task)."
    ]
    recording.report(
        "cluster_overhead",
        "Dask cluster vs local workers; task rate",
        ratios,
        notes,
        record=args.record,
        start_info=start,
        results_path=args.results,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
