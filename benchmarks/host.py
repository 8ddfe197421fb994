"""The machine a benchmark runs on: its description (CPU, cores, torch, load), threads, memory, quiet."""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any


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


def wait_for_quiet(max_load: float, max_wait_s: float, poll_s: float = 60.0) -> float:
    """Poll the 1-minute load average until it is below ``max_load`` (or ``max_wait_s`` passed)."""
    deadline = time.monotonic() + max_wait_s
    load = load_average()[0]
    while load >= max_load and time.monotonic() < deadline:
        print(f"load average {load:.2f} >= {max_load}; waiting", file=sys.stderr, flush=True)
        time.sleep(poll_s)
        load = load_average()[0]
    return load
