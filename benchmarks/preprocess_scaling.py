"""Benchmark 5: preprocessing throughput (videos/min) with 2 workers vs 1 (target: at least 1.7x).

``preprocess_dataset`` with the packaged demo settings (MTCNN, JPEG crops, clips; see demo.yaml) on
the built-in synthetic videos (320x240, 72 frames), into a fresh store each time. Two rates per run:
end to end (``videos / elapsed``, worker start-up included, what a user sees) and steady state (videos
finished after the first one, over the time from the first to the last finish).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import arguments, host, inputs, recording, timing
from deepfake_detect.config import Config
from deepfake_detect.preprocess import PreprocessProgress, preprocess_dataset
from deepfake_detect.types import VideoRecord

TARGET = 1.7


def run(records: Sequence[VideoRecord], workers: int) -> dict[str, Any]:
    """The demo settings with ``workers`` workers, into a fresh temporary store."""
    with tempfile.TemporaryDirectory() as out:
        return timed_preprocess(records, inputs.demo_config(), Path(out), workers)


def timed_preprocess(
    records: Sequence[VideoRecord], config: Config, out: Path, workers: int
) -> dict[str, Any]:
    """``preprocess_dataset`` of ``records`` into ``out``: seconds, videos/min end to end and in the steady
    state, the clips and the statuses."""
    finished: list[float] = []

    def progress(state: PreprocessProgress) -> None:
        if state.video_id is not None:
            finished.append(time.perf_counter())

    start = time.perf_counter()
    with timing.quiet_logs():
        summary = preprocess_dataset(records, out, config, workers=workers, progress=progress)
    elapsed = time.perf_counter() - start
    steady = (len(finished) - 1) / (finished[-1] - finished[0]) if len(finished) > 1 else float("nan")
    return {
        "videos": len(records),
        "elapsed_s": elapsed,
        "videos_per_min": 60.0 * len(records) / elapsed,
        "steady_videos_per_min": 60.0 * steady,
        "first_done_s": finished[0] - start if finished else float("nan"),
        "clips": summary.clips,
        "statuses": summary.status_counts,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = arguments.parser(__doc__ or "")
    p.add_argument("--videos", type=int, default=16)
    args = arguments.parse(p, argv)
    start = host.machine()
    videos, frames = (2, 30) if args.quick else (args.videos, 72)
    records = inputs.synth_records(args.cache, videos, frames)
    one = run(records, workers=1)
    two = run(records, workers=2)
    details = {"1 worker": one, "2 workers": two}
    ratios = [
        recording.Ratio(
            "preprocess_scaling",
            "end to end (worker start-up included)",
            two["videos_per_min"] / one["videos_per_min"],
            TARGET,
            "at_least",
            "videos/min with 2 workers / with 1",
            details,
        ),
        recording.Ratio(
            "preprocess_scaling",
            "steady state (after the first video)",
            two["steady_videos_per_min"] / one["steady_videos_per_min"],
            TARGET,
            "at_least",
            "videos/min with 2 workers / with 1",
        ),
    ]
    notes = [
        f"{videos} synthetic videos of {frames} frames (320x240 base size, some 0.8x / 1.25x); demo settings;"
        " torch threads per worker = preprocess.threads_per_worker (1), so one worker uses one core."
    ]
    recording.report(
        "preprocess_scaling",
        "preprocess throughput, 1 vs 2 workers",
        ratios,
        notes,
        record=args.record,
        start_info=start,
        results_path=args.results,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
