"""Preprocessing in the tracked mode (issue 14): ``preprocess_dataset`` with ``faces.detect_every 4`` and
``faces.tracked true`` against the paper's every-frame detection (the default), on the built-in synthetic
videos of benchmark 5, each into a fresh store (target: at least 2x the videos/min, with the same clips for
at least 95% of the videos).

"The same clips" for a video: both stores hold the same clips, each the same frame indices (track numbers
are not compared, only which frames each clip holds) with the same status. For the clips both have, the
crops themselves differ where interpolated boxes differ from detected ones: their mean absolute difference
(0-255 scale) is reported beside the ratio.
The two modes run alternately, ``--repeats`` times each, with the demo's 2 workers; the ratio is of the
medians.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import arguments, host, inputs, recording, timing
from benchmarks.preprocess_scaling import timed_preprocess
from deepfake_detect.data.store import ClipStore
from deepfake_detect.types import ClipRow, VideoRecord

NAME = "preprocess_tracked"
TARGET_SPEED = 2.0
TARGET_SAME = 0.95
MODES = {
    "every frame (the paper's default)": [],
    "tracked (faces.detect_every=4, faces.tracked=true)": ["faces.detect_every=4", "faces.tracked=true"],
}


def clip_key(rows: Sequence[ClipRow]) -> list[tuple[tuple[int, ...], str]]:
    """What makes a video's clips the same clips: each clip's frame indices and status."""
    return sorted((row.frame_indices, row.status) for row in rows)


def compare(records: Sequence[VideoRecord], every: ClipStore, tracked: ClipStore) -> dict[str, Any]:
    """The share of videos with the same clips in both stores, and how far the shared clips' crops differ."""
    same = 0
    differences: list[float] = []
    differing: list[str] = []
    for record in records:
        a, b = every.read_rows(record.video_id) or [], tracked.read_rows(record.video_id) or []
        if clip_key(a) == clip_key(b) and a:
            same += 1
        else:
            differing.append(record.video_id)
        by_frames = {row.frame_indices: row for row in b if row.status == "ok"}
        for row in a:
            other = by_frames.get(row.frame_indices)
            if row.status == "ok" and other is not None:
                x, y = every.read_clip(row).astype(np.float32), tracked.read_clip(other).astype(np.float32)
                differences.append(float(np.abs(x - y).mean()))
    return {
        "same_share": same / max(1, len(records)),
        "videos": len(records),
        "differing_videos": differing,
        "crop_mad_median": float(np.median(differences)) if differences else float("nan"),
        "crop_mad_max": float(np.max(differences)) if differences else float("nan"),
        "shared_clips": len(differences),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = arguments.parser(__doc__ or "")
    p.add_argument("--videos", type=int, default=16)
    p.add_argument("--repeats", type=int, default=2, help="runs of each mode, alternating (default 2)")
    args = arguments.parse(p, argv)
    start = host.machine()
    videos, frames, repeats = (2, 30, 1) if args.quick else (args.videos, 72, args.repeats)
    records = inputs.synth_records(args.cache, videos, frames)
    configs = {mode: inputs.demo_config(overrides) for mode, overrides in MODES.items()}
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    every_mode, tracked_mode = MODES
    with tempfile.TemporaryDirectory() as work:
        stores: dict[str, Path] = {}
        for repeat in range(repeats):
            for index, (mode, config) in enumerate(configs.items()):
                out = Path(work) / f"{index}-{repeat}"
                runs[mode].append(timed_preprocess(records, config, out, config.preprocess.workers))
                stores[mode] = out
        agreement = compare(records, ClipStore(stores[every_mode]), ClipStore(stores[tracked_mode]))
    rate = {mode: timing.median([r["videos_per_min"] for r in runs[mode]]) for mode in MODES}
    ratios = [
        recording.Ratio(
            NAME,
            "videos/min",
            rate[tracked_mode] / rate[every_mode],
            TARGET_SPEED,
            "at_least",
            "tracked / every-frame videos per minute (medians), preprocess_dataset with the demo's 2 workers",
            {mode: runs[mode] for mode in MODES},
        ),
        recording.Ratio(
            NAME,
            "same clips",
            agreement["same_share"],
            TARGET_SAME,
            "at_least",
            "share of videos whose clips (frame indices, status) are the same in both stores",
            agreement,
        ),
    ]
    notes = [
        f"{videos} synthetic videos of {frames} frames (320x240 base size, some 0.8x / 1.25x), the demo's "
        f"settings otherwise (MTCNN, min_face_size 40, 64-px crops, clips of 16); {repeats} run(s) of each "
        "mode, alternating, each into a fresh store; crop_mad: mean absolute difference of the shared clips' "
        "crops, 0-255."
    ]
    recording.report(
        NAME,
        "preprocess, tracked mode vs every-frame detection",
        ratios,
        notes,
        record=args.record,
        start_info=start,
        results_path=args.results,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
