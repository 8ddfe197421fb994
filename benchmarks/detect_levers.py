"""Levers for ``detect`` (no target): the same 100 frames of the 1080p videos as benchmark 1, with the
Detector's default options and with one option changed at a time, all in one run.

Each variant is timed once after a warm-up on a tiny video; the table gives its time relative to the
defaults, its stage timings, the faces it scored and how far its probabilities move from the defaults'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import arguments, host, inputs, media, timing
from deepfake_detect.inference import DetectOptions, Detector, VideoResult

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "detect_every=1 (detector on every frame)": {"detect_every": 1},
    "detect_every=8": {"detect_every": 8},
    "min_face_size=80": {"min_face_size": 80},
    "detect_max_side=480": {"detect_max_side": 480},
    "min_face_size=80, detect_max_side=480": {"min_face_size": 80, "detect_max_side": 480},
    "precision=32 (no bf16)": {"precision": "32"},
    "detect_threads=None (MTCNN on 2 threads)": {"detect_threads": None},
    "face_detector=haar": {"face_detector": "haar"},
}


def run_variant(model: Path, video: Path, warm: Path, options: DetectOptions) -> tuple[VideoResult, float]:
    detector = Detector.load(model, options=options)
    with timing.quiet_logs():
        detector.detect(warm)
        return timing.timed(lambda: detector.detect(video))


def describe(result: VideoResult, seconds: float, base: tuple[VideoResult, float] | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "seconds": round(seconds, 2),
        "stages": {k: round(v, 2) for k, v in result.timings.items() if k != "total"},
        "faces": [f.n_frames for f in result.faces],
        "status": result.status.value,
    }
    if base is not None:
        row["speedup_vs_defaults"] = round(base[1] / seconds, 2)
        if result.ok and base[0].ok and len(result.faces) == len(base[0].faces):
            mine = sorted(f.fake_probability for f in result.faces)
            theirs = sorted(f.fake_probability for f in base[0].faces)
            row["max_dp_vs_defaults"] = float(np.max(np.abs(np.subtract(mine, theirs))))
    return row


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments.parse(arguments.parser(__doc__ or ""), argv)
    host.set_threads(2)
    start = host.machine()
    if args.quick:
        videos, spec, frames = [media.face_video(args.cache, 480, 270, 0.6)], inputs.QUICK_MODEL, 18
        variants = dict(list(VARIANTS.items())[:2])
    else:
        videos = [media.face_video(args.cache, 1920, 1080, 10.0, faces=n) for n in (1, 3)]
        spec, frames, variants = inputs.ModelSpec(), 100, VARIANTS
    model = inputs.model_dir(args.cache, spec)
    warm = media.face_video(args.cache, 480, 270, 0.6)
    lines = []
    for video in videos:
        base = None
        for name, change in variants.items():
            options = replace(DetectOptions(max_frames=frames), **change)
            result, seconds = run_variant(model, video, warm, options)
            row = describe(result, seconds, base)
            base = base or (result, seconds)
            lines.append(f"{video.stem}, {name} (load {host.load_average()[0]:.2f}): {row}")
            print(lines[-1], flush=True)
    if args.record:
        text = "\n".join(f"- {line}" for line in lines)
        with args.results.open("a", encoding="utf-8") as handle:
            handle.write(
                f"\n### detect_levers: one option at a time\n\n- machine: {host.machine_line(start)}\n\n"
            )
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
