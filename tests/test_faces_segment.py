"""Two-pointer constant-interval runs and clip splitting, checked against a brute-force reference."""

from __future__ import annotations

import random

import numpy as np
import pytest

from deepfake_detect.faces import constant_interval_runs, split_into_clips


def reference_runs(frame_indices: list[int], stride: int) -> list[list[int]]:
    """Brute force: every slice of the sorted unique values that steps by `stride` and cannot grow."""
    values = [int(v) for v in np.unique(np.asarray(frame_indices, dtype=np.int64))]
    n = len(values)
    runs = []
    for i in range(n):
        for j in range(i, n):
            inner = all(values[k + 1] - values[k] == stride for k in range(i, j))
            left_closed = i == 0 or values[i] - values[i - 1] != stride
            right_closed = j == n - 1 or values[j + 1] - values[j] != stride
            if inner and left_closed and right_closed:
                runs.append(values[i : j + 1])
    return sorted(runs)


def reference_clips(run: list[int], clip_len: int) -> list[list[int]]:
    clips, current = [], []
    for item in run:
        current.append(item)
        if len(current) == clip_len:
            clips.append(current)
            current = []
    return clips


@pytest.mark.parametrize(
    ("indices", "stride", "expected"),
    [
        ([], 1, []),
        ([7], 1, [[7]]),
        ([7], 3, [[7]]),
        ([3, 3, 4, 4, 5, 3], 1, [[3, 4, 5]]),
        ([5, 1, 3, 2, 4, 0], 1, [[0, 1, 2, 3, 4, 5]]),
        ([0, 1, 2, 5, 6, 9], 1, [[0, 1, 2], [5, 6], [9]]),
        ([9, 6, 5, 2, 1, 0, 6], 1, [[0, 1, 2], [5, 6], [9]]),
        ([0, 2, 4, 5, 7, 9, 12], 2, [[0, 2, 4], [5, 7, 9], [12]]),
        ([0, 1, 2, 3], 2, [[0], [1], [2], [3]]),  # neighbours closer than the stride break the run
        ([0, 3, 6, 9, 10, 13], 3, [[0, 3, 6, 9], [10, 13]]),
        ([0, 4, 8], 3, [[0], [4], [8]]),
        ([0, 1], 1, [[0, 1]]),
        ([0, 2], 1, [[0], [2]]),
    ],
)
def test_constant_interval_runs_cases(indices: list[int], stride: int, expected: list[list[int]]) -> None:
    assert constant_interval_runs(indices, stride) == expected


def test_constant_interval_runs_accepts_numpy_and_does_not_mutate() -> None:
    indices = np.array([4, 2, 0, 2, 10], dtype=np.int64)
    runs = constant_interval_runs(indices, np.int64(2))
    assert runs == [[0, 2, 4], [10]]
    assert all(type(v) is int for run in runs for v in run)
    assert indices.tolist() == [4, 2, 0, 2, 10]


def test_constant_interval_runs_match_brute_force() -> None:
    rng = random.Random(1234)
    for _ in range(600):
        stride = rng.randint(1, 4)
        size = rng.randint(0, 25)
        on_grid = [stride * rng.randint(0, 15) for _ in range(size)]
        off_grid = [rng.randint(0, 60) for _ in range(rng.randint(0, 4))]
        indices = on_grid + off_grid
        rng.shuffle(indices)
        runs = constant_interval_runs(indices, stride)
        assert runs == reference_runs(indices, stride), (indices, stride)
        assert [v for run in runs for v in run] == sorted(set(indices))


@pytest.mark.parametrize(
    ("length", "clip_len", "n_clips"),
    [
        (0, 3, 0),
        (1, 1, 1),
        (2, 3, 0),
        (3, 3, 1),
        (5, 3, 1),
        (6, 3, 2),
        (7, 3, 2),
        (10, 5, 2),
        (9, 5, 1),
        (4, 1, 4),
    ],
)
def test_split_into_clips_counts_and_content(length: int, clip_len: int, n_clips: int) -> None:
    run = list(range(100, 100 + 2 * length, 2))
    clips = split_into_clips(run, clip_len)
    assert len(clips) == n_clips
    assert all(len(c) == clip_len for c in clips)
    assert [v for c in clips for v in c] == run[: n_clips * clip_len]


def test_split_into_clips_matches_reference() -> None:
    rng = random.Random(99)
    for _ in range(300):
        run = sorted(rng.sample(range(1000), rng.randint(0, 40)))
        clip_len = rng.randint(1, 12)
        assert split_into_clips(run, clip_len) == reference_clips(run, clip_len)


def test_runs_then_clips_pipeline() -> None:
    indices = list(range(0, 20, 2)) + list(range(30, 37, 2))  # runs of 10 and 4 frames at stride 2
    clips = [clip for run in constant_interval_runs(indices, 2) for clip in split_into_clips(run, 4)]
    assert clips == [[0, 2, 4, 6], [8, 10, 12, 14], [30, 32, 34, 36]]


@pytest.mark.parametrize("stride", [0, -1, 1.5, True, "2", None])
def test_constant_interval_runs_rejects_bad_stride(stride: object) -> None:
    with pytest.raises(ValueError, match="stride"):
        constant_interval_runs([0, 1, 2], stride)  # type: ignore[arg-type]


@pytest.mark.parametrize("clip_len", [0, -3, 2.0, False])
def test_split_into_clips_rejects_bad_clip_len(clip_len: object) -> None:
    with pytest.raises(ValueError, match="clip_len"):
        split_into_clips([0, 1, 2], clip_len)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [[0, 1.5], [0, "2"], [None]])
def test_constant_interval_runs_rejects_non_integer_indices(bad: list[object]) -> None:
    with pytest.raises(ValueError, match="frame indices"):
        constant_interval_runs(bad, 1)  # type: ignore[arg-type]
