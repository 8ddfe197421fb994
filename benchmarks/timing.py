"""Timing a benchmark's sections: a stopwatch, one timed call, medians, logs kept quiet while timing."""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


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


def timed_process(command: list[str], timeout_s: float = 900) -> tuple[float, str]:
    """Wall seconds of a whole process and its stdout (it must succeed)."""
    env = {**os.environ, "COLUMNS": "160"}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, done.stdout
