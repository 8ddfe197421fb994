"""Benchmark 3: peak RSS of ``detect`` on a 10-s and a 5-min video (target: ratio at most 1.2).

Both videos are 640x360, 30 fps, H.264, one moving face. Each ``detect`` runs in a fresh Python process
(``--child``) that loads the model (ResNet-50 + LSTM 4 x 512), analyses the whole video and reports its
own peak RSS (``ru_maxrss``) and its RSS after loading the model. The Detector's default ``max_frames``
(300) would stop both videos after 10 s and make the ratio trivially 1, so both run with
``max_frames=None`` (the whole video) and ``frame_stride=10`` (so that the 5-min video takes about a
minute: 9000 frames decoded, 900 analysed; the 10-s video: 300 decoded, 30 analysed).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import arguments, host, inputs, media, recording, timing

TARGET = 1.2
STRIDE = 10


def child(video: Path, model: Path, stride: int) -> dict[str, Any]:
    """Run in the fresh process: load, detect, report memory (MiB) and what was analysed."""
    host.set_threads(2)
    from deepfake_detect.inference import DetectOptions, Detector

    options = DetectOptions(max_frames=None, frame_stride=stride)
    detector = Detector.load(model, options=options)
    detector.face_detector  # noqa: B018 - build the face detector now (it is lazy)
    loaded_rss = host.current_rss_mb()
    with timing.quiet_logs():
        result, seconds = timing.timed(lambda: detector.detect(video))
    return {
        "peak_rss_mb": host.peak_rss_mb(),
        "loaded_rss_mb": loaded_rss,
        "seconds": seconds,
        "status": result.status.value,
        "frames_used": result.info.get("frames_used"),
        "faces": len(result.faces),
    }


def measure(video: Path, model: Path, stride: int) -> dict[str, Any]:
    """``child`` in a fresh interpreter; its JSON line back."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.memory_vs_length",
        "--child",
        str(video),
        str(model),
        "--stride",
        str(stride),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}): {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: Sequence[str] | None = None) -> int:
    p = arguments.parser(__doc__ or "")
    p.add_argument("--child", nargs=2, type=Path, metavar=("VIDEO", "MODEL"), help=argparse_hidden())
    p.add_argument("--stride", type=int, default=STRIDE)
    if argv is None:
        argv = sys.argv[1:]
    if "--child" in argv:
        args = p.parse_args(list(argv))
        print(json.dumps(child(args.child[0], args.child[1], args.stride)))
        return 0
    args = arguments.parse(p, argv)
    start = host.machine()
    if args.quick:
        short_s, long_s, spec, stride = 0.6, 1.0, inputs.QUICK_MODEL, 1
    else:
        short_s, long_s, spec, stride = 10.0, 300.0, inputs.ModelSpec(), args.stride
    model = inputs.model_dir(args.cache, spec)
    short = measure(media.face_video(args.cache, 640, 360, short_s), model, stride)
    long = measure(media.face_video(args.cache, 640, 360, long_s), model, stride)
    growth_short = short["peak_rss_mb"] - short["loaded_rss_mb"]
    growth_long = long["peak_rss_mb"] - long["loaded_rss_mb"]
    details = {
        f"{short_s:g}s": short,
        f"{long_s:g}s": long,
        "peak_above_loaded_mb": f"{growth_short:.0f} vs {growth_long:.0f}",
    }
    ratio = recording.Ratio(
        "memory_vs_length",
        f"640x360, {long_s:g} s vs {short_s:g} s, stride {stride}",
        long["peak_rss_mb"] / short["peak_rss_mb"],
        TARGET,
        "at_most",
        "peak RSS long / peak RSS short (fresh process each)",
        details,
    )
    notes = ["max_frames=None and frame_stride set (see the module docstring); each run in a fresh process."]
    recording.report(
        "memory_vs_length",
        "peak RSS vs video length",
        [ratio],
        notes,
        record=args.record,
        start_info=start,
        results_path=args.results,
    )
    return 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    raise SystemExit(main())
