"""Shared helpers of the CPU benchmarks: the machine's description, ratio lines and RESULTS.md, timing,
and the benchmark videos (real face photographs from scikit-image moving over a background, H.264).

Every benchmark module has ``main(argv) -> int`` and the options of :func:`parser`: ``--quick`` (tiny
inputs, for the smoke test; nothing is appended to RESULTS.md unless ``--record`` is given), ``--cache``
(where generated videos and models are kept between runs; default ``benchmarks/.cache``, git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_PATH = BENCH_DIR / "RESULTS.md"
DEFAULT_CACHE = BENCH_DIR / ".cache"
RATIO_PREFIX = "RATIO"

T = TypeVar("T")


# -- the machine ------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (math.nan, math.nan, math.nan)


def machine() -> dict[str, Any]:
    """CPU model, cores, torch version and threads, Python, time (UTC) and the load average now."""
    import torch

    flags = cpu_flags()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "isa": ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags) or "-",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": "{:.2f} {:.2f} {:.2f}".format(*load_average()),
    }


def machine_line(info: dict[str, Any] | None = None) -> str:
    m = info or machine()
    return (
        f"{m['time']} | {m['cpu']} ({m['isa']}), {m['usable_cores']} of {m['cores']} cores usable, "
        f"torch {m['torch']} ({m['torch_threads']} threads), Python {m['python']} | load average {m['load']}"
    )


def set_threads(threads: int = 2) -> None:
    """Pin torch (and OpenCV) to ``threads`` threads: the issue measures on 2 cores.

    Also applies the CLI's glibc malloc tuning (``deepfake_detect.infra.runtime.tune_malloc``) to this
    process, so that in-process runs are timed as ``deepfake-detect`` runs them; both sides of a comparison
    share the process, so they share the setting.
    """
    import cv2
    import torch

    from deepfake_detect.infra.runtime import tune_malloc

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    tune_malloc()


def peak_rss_mb() -> float:
    """This process's peak resident set size (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return math.nan


# -- ratios and RESULTS.md ------------------------------------------------------------------------
@dataclass
class Ratio:
    """One measured ratio and its target (``at_least``: value >= target, else value <= target)."""

    benchmark: str
    case: str
    value: float
    target: float
    kind: Literal["at_least", "at_most"]
    meaning: str
    details: dict[str, Any] = field(default_factory=dict)
    load: str = field(default_factory=lambda: f"{load_average()[0]:.2f}")

    @property
    def met(self) -> bool:
        ok = self.value >= self.target if self.kind == "at_least" else self.value <= self.target
        return bool(ok and math.isfinite(self.value))

    @property
    def verdict(self) -> str:
        if self.met:
            return "met"
        if not math.isfinite(self.value):
            return "not measured"
        gap = (self.target / self.value if self.kind == "at_least" else self.value / self.target) - 1
        return f"missed by {100 * gap:.0f}%"

    def line(self) -> str:
        op = ">=" if self.kind == "at_least" else "<="
        return (
            f"{RATIO_PREFIX} {self.benchmark}[{self.case}] = {self.value:.3g} "
            f"(target {op} {self.target:g}: {self.verdict}) -- {self.meaning}; load {self.load}"
        )


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def report(
    benchmark: str,
    title: str,
    ratios: Sequence[Ratio],
    notes: Sequence[str],
    *,
    record: bool,
    start_info: dict[str, Any],
    results_path: Path = RESULTS_PATH,
) -> None:
    """Print the ratio lines; with ``record``, append a section to RESULTS.md."""
    for ratio in ratios:
        print(ratio.line(), flush=True)
        for key, value in ratio.details.items():
            print(f"    {key}: {fmt(value)}")
    for note in notes:
        print(f"  note: {note}")
    if record:
        append_results(benchmark, title, ratios, notes, start_info, results_path)
        print(f"appended to {results_path}")


def append_results(
    benchmark: str,
    title: str,
    ratios: Sequence[Ratio],
    notes: Sequence[str],
    start_info: dict[str, Any],
    results_path: Path = RESULTS_PATH,
) -> None:
    end = machine()
    lines = [
        f"\n### {benchmark}: {title}\n",
        f"- machine: {machine_line(start_info)}",
        f"- load average at the end: {end['load']}",
        "",
        "| case | ratio | target | verdict | load (1 min) | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for r in ratios:
        op = ">=" if r.kind == "at_least" else "<="
        lines.append(
            f"| {r.case} | {r.value:.3g} | {op} {r.target:g} | {r.verdict} | {r.load} | {r.meaning} |"
        )
    for r in ratios:
        if r.details:
            lines.append(f"\n{r.case}: " + "; ".join(f"{k} = {fmt(v)}" for k, v in r.details.items()))
    lines += [f"\n- {note}" for note in notes]
    if not results_path.exists():
        results_path.write_text("# Benchmark results\n", encoding="utf-8")
    with results_path.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


# -- arguments ------------------------------------------------------------------------------------
def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny inputs (smoke test); nothing recorded")
    p.add_argument(
        "--record", action=argparse.BooleanOptionalAction, default=None, help="append to RESULTS.md"
    )
    p.add_argument("--cache", type=Path, default=None, help="folder for generated videos and models")
    p.add_argument("--results", type=Path, default=RESULTS_PATH, help="the RESULTS.md to append to")
    return p


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = p.parse_args(list(argv) if argv is not None else None)
    if args.record is None:
        args.record = not args.quick
    if args.cache is None:
        args.cache = Path(os.environ.get("DFD_BENCH_CACHE", str(DEFAULT_CACHE)))
    args.cache = Path(args.cache) / ("quick" if args.quick else "full")
    args.cache.mkdir(parents=True, exist_ok=True)
    return args


# -- timing ---------------------------------------------------------------------------------------
class Stopwatch:
    """Accumulates wall-clock seconds: ``with watch: ...`` or ``watch.call(fn)``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._start
        self.calls += 1

    def call(self, fn: Callable[[], T]) -> T:
        with self:
            return fn()


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


@contextmanager
def quiet_logs() -> Iterator[None]:
    """Silence INFO logs of the package and libraries during a timed section."""
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def wait_for_quiet(max_load: float, max_wait_s: float, poll_s: float = 60.0) -> float:
    """Poll the 1-minute load average until it is below ``max_load`` (or ``max_wait_s`` passed)."""
    deadline = time.monotonic() + max_wait_s
    load = load_average()[0]
    while load >= max_load and time.monotonic() < deadline:
        print(f"load average {load:.2f} >= {max_load}; waiting", file=sys.stderr, flush=True)
        time.sleep(poll_s)
        load = load_average()[0]
    return load


# -- benchmark videos -----------------------------------------------------------------------------
# Face centres (x, y) in the 512x512 scikit-image photos (MTCNN boxes measured once on the photos).
_FACE_CENTRES = {"astronaut": (224.0, 117.0), "camera": (227.0, 155.0)}
_TILE_SOURCE = 280  # side of the square cut around each face, in photo pixels


def face_tiles(count: int, side: int) -> list[np.ndarray]:
    """``count`` square photo tiles (side x side) each holding one real face: astronaut, camera, and
    the astronaut mirrored (cycled)."""
    import cv2
    from skimage import data

    photos = {"astronaut": data.astronaut(), "camera": np.repeat(data.camera()[:, :, None], 3, axis=2)}
    tiles = []
    for name, flip in (("astronaut", False), ("camera", False), ("astronaut", True)):
        cx, cy = _FACE_CENTRES[name]
        half = _TILE_SOURCE // 2
        x0 = int(np.clip(cx - half, 0, 512 - _TILE_SOURCE))
        y0 = int(np.clip(cy - half, 0, 512 - _TILE_SOURCE))
        cut = photos[name][y0 : y0 + _TILE_SOURCE, x0 : x0 + _TILE_SOURCE]
        cut = cut[:, ::-1] if flip else cut
        tiles.append(np.ascontiguousarray(cv2.resize(cut, (side, side), interpolation=cv2.INTER_AREA)))
    return [tiles[i % len(tiles)] for i in range(count)]


def _background(width: int, height: int) -> np.ndarray:
    """A smooth colour gradient with soft blobs (cheap to encode, not flat)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 90 + 60 * xx / width
    g = 110 + 40 * np.sin(yy / height * 3.0)
    b = 130 + 50 * np.cos((xx + yy) / (width + height) * 6.0)
    return np.clip(np.stack([r, g, b], axis=2), 0, 255).astype(np.uint8)  # (H, W, 3)


def render_frames(width: int, height: int, frames: int, faces: int, fps: float) -> Iterator[np.ndarray]:
    """Frames with ``faces`` photo tiles, each in its own vertical band, gliding smoothly (sinusoids)."""
    side = round(0.52 * min(height, 1.1 * width / faces)) // 2 * 2
    tiles = face_tiles(faces, side)
    background = _background(width, height)
    band = width / faces
    amp_x = 0.4 * max(0.0, band - side)
    amp_y = 0.4 * max(0.0, height - side)
    for t in range(frames):
        frame = background.copy()
        seconds = t / fps
        for i, tile in enumerate(tiles):
            cx = band * (i + 0.5) + amp_x * math.sin(2 * math.pi * 0.13 * seconds + 1.7 * i)
            cy = height / 2 + amp_y * math.sin(2 * math.pi * 0.09 * seconds + 2.3 * i)
            x = int(np.clip(round(cx - side / 2), 0, width - side))
            y = int(np.clip(round(cy - side / 2), 0, height - side))
            frame[y : y + side, x : x + side] = tile
        yield frame


def face_video(
    cache: Path, width: int, height: int, seconds: float, faces: int = 1, fps: float = 30.0
) -> Path:
    """An H.264 mp4 (crf 23) of ``seconds`` with ``faces`` moving real faces, made once into ``cache``."""
    from deepfake_detect.video import write_video

    frames = round(seconds * fps)
    path = cache / "videos" / f"faces{faces}_{width}x{height}_{fps:g}fps_{frames}f.mp4"
    if not path.exists():
        print(f"making {path.name} ...", file=sys.stderr, flush=True)
        write_video(path, render_frames(width, height, frames, faces, fps), fps=fps, crf=23)
    return path
