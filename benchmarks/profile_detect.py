"""Profile of ``detect`` on the 1080p one-face video (the same video and model as benchmark 1).

Three views, appended to RESULTS.md: the Detector's own stage timings; the top functions by self time,
sampled with py-spy when it is installed (``pip install py-spy``) or else from cProfile; and the top
torch operators of one embedding batch (torch.profiler). ``max_frames=100`` as in benchmark 1.
"""

from __future__ import annotations

import collections
import cProfile
import pstats
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import arguments, host, inputs, media, timing

FRAMES = 100
TOP = 15


def child(video: Path, model: Path, frames: int) -> dict[str, float]:
    """Load and warm up the Detector, then analyse the video once; returns its stage timings."""
    host.set_threads(2)
    from deepfake_detect.inference import DetectOptions, Detector

    detector = Detector.load(model, options=DetectOptions(max_frames=frames))
    detector.face_detector.detect(np.zeros((160, 160, 3), np.uint8))
    with timing.quiet_logs():
        result = detector.detect(video)
    return {k: round(v, 2) for k, v in result.timings.items()}


def _frame_name(frame: str) -> str:
    """py-spy raw frame ``function (path/to/file.py:line)`` -> ``function (file.py)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rstrip(')').split(':')[0]).name})"


def py_spy_top(video: Path, model: Path, frames: int) -> list[str]:
    """Top functions by self samples, and by inclusive samples, from a py-spy recording."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "profile.txt"
        command = [
            exe,
            "record",
            "--rate",
            "100",
            "--format",
            "raw",
            "--output",
            str(out),
            "--",
            sys.executable,
            "-m",
            "benchmarks.profile_detect",
            "--child",
            str(video),
            str(model),
            "--frames",
            str(frames),
        ]
        subprocess.run(command, check=True, capture_output=True, text=True)
        lines = out.read_text(encoding="utf-8").splitlines()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        frames_ = [_frame_name(f) for f in stack.split(";") if f]
        if not frames_ or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        own[frames_[-1]] += count
        for name in set(frames_):
            inclusive[name] += count
    rows = ["| self % | function (file) |", "|---|---|"]
    rows += [f"| {100 * n / total:.1f} | {name} |" for name, n in own.most_common(TOP)]
    generic = ("<module>", "_run_", "main (", "child (", "Module._", "<lambda>", "StageTimer.")
    interesting = [(n, name) for name, n in inclusive.items() if not name.startswith(generic)]
    rows += ["", "| inclusive % | function (file) |", "|---|---|"]
    rows += [f"| {100 * n / total:.1f} | {name} |" for n, name in sorted(interesting, reverse=True)[:TOP]]
    return [f"py-spy, {total} samples at 100 Hz (whole process: imports and model loading included)", *rows]


def cprofile_top(video: Path, model: Path, frames: int) -> list[str]:
    profiler = cProfile.Profile()
    profiler.enable()
    child(video, model, frames)
    profiler.disable()
    stats = pstats.Stats(profiler)
    entries = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:TOP]  # type: ignore[attr-defined]
    rows = ["| self s | cumulative s | calls | function |", "|---|---|---|---|"]
    for (file, line, name), (_, calls, self_s, cum_s, _) in entries:
        rows.append(f"| {self_s:.2f} | {cum_s:.2f} | {calls} | {name} ({Path(file).name}:{line}) |")
    return ["cProfile (py-spy not installed), in process", *rows]


def embed_ops(model: Path) -> list[str]:
    """Top torch operators (self CPU time) of one embedding batch of 32 crops."""
    import torch

    from deepfake_detect.inference import Detector

    detector = Detector.load(model)
    crops = np.random.default_rng(0).integers(0, 255, (32, 256, 256, 3), dtype=np.uint8)
    detector.engine.embed(crops)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        detector.engine.embed(crops)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10)
    return [
        f"torch.profiler, one embed batch of 32 crops ({detector.model_info()['precision']}):",
        "```",
        table.strip(),
        "```",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    p = arguments.parser(__doc__ or "")
    p.add_argument("--child", nargs=2, type=Path, metavar=("VIDEO", "MODEL"))
    p.add_argument("--frames", type=int, default=FRAMES)
    args = p.parse_args(list(argv) if argv is not None else None)
    if args.child:
        print(child(args.child[0], args.child[1], args.frames))
        return 0
    args = arguments.parse(p, argv)
    start = host.machine()
    host.set_threads(2)
    if args.quick:
        video, spec, frames = media.face_video(args.cache, 480, 270, 0.6), inputs.QUICK_MODEL, 18
    else:
        video, spec, frames = media.face_video(args.cache, 1920, 1080, 10.0), inputs.ModelSpec(), args.frames
    model = inputs.model_dir(args.cache, spec)
    timings = child(video, model, frames)
    has_spy = shutil.which("py-spy") or Path(sys.executable).with_name("py-spy").exists()
    top = py_spy_top(video, model, frames) if has_spy else cprofile_top(video, model, frames)
    notes = [f"stage timings of detect ({frames} frames of {video.name}): {timings}", *top, *embed_ops(model)]
    for line in notes:
        print(line)
    if args.record:
        body = "\n".join(notes)
        title = "\n### profile_detect: where detect spends its time\n"
        text = f"{title}\n- machine: {host.machine_line(start)}\n\n{body}\n"
        with args.results.open("a", encoding="utf-8") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
