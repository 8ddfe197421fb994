"""Two-pointer constant-interval selection (SPEC §2 'Two-pointer').

A face track's frame indices are cut into maximal runs whose consecutive members are exactly
``stride`` apart; each run is then cut into non-overlapping clips of ``clip_len`` frames.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if int(value) < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _sorted_unique(frame_indices: Sequence[int]) -> list[int]:
    for value in frame_indices:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"frame indices must be integers, got {type(value).__name__} {value!r}")
    return sorted({int(v) for v in frame_indices})


def constant_interval_runs(frame_indices: Sequence[int], stride: int) -> list[list[int]]:
    """Maximal runs, in increasing order, whose consecutive members are exactly ``stride`` apart.

    The input may be unsorted and may hold duplicates (they are removed). Every index ends up in
    exactly one run; an index with no neighbour at distance ``stride`` forms a run of length 1.

    >>> constant_interval_runs([5, 0, 1, 2, 2, 4], stride=1)
    [[0, 1, 2], [4, 5]]
    """
    stride = _check_positive_int("stride", stride)
    values = _sorted_unique(frame_indices)
    runs: list[list[int]] = []
    start = 0  # left pointer: first index of the current run
    while start < len(values):
        end = start  # right pointer: advance while the next gap is exactly `stride`
        while end + 1 < len(values) and values[end + 1] - values[end] == stride:
            end += 1
        runs.append(values[start : end + 1])
        start = end + 1
    return runs


def split_into_clips(run: Sequence[int], clip_len: int) -> list[list[int]]:
    """Non-overlapping clips of exactly ``clip_len`` items from the start of ``run``; the leftover is dropped.

    >>> split_into_clips([0, 1, 2, 3, 4], clip_len=2)
    [[0, 1], [2, 3]]
    """
    clip_len = _check_positive_int("clip_len", clip_len)
    n_clips = len(run) // clip_len
    return [list(run[k * clip_len : (k + 1) * clip_len]) for k in range(n_clips)]
