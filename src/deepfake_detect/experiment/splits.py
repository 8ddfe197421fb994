"""Train / validation / test splits of a clip manifest, repeated with different seeds (SPEC §2).

Two protocols:

- ``split_by="clip"``: the paper's protocol. ``test_clips`` clips are drawn at random, then ``val_clips`` of
  the rest; everything else is training data. Clips of one video (and fakes made from one original) can fall
  on both sides.
- ``split_by="source"`` (default): whole source groups (an original video together with every fake made from
  it, ``source_id`` in the manifest) are drawn until the test set holds about ``test_clips`` clips, then the
  validation set likewise. No source video has clips on two sides.

A split whose test set holds a single class is redrawn (up to a few times) when the data has both classes:
ROC AUC and EER are undefined on one class. Every draw is deterministic given ``(seed, repeat)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from deepfake_detect.config import Config
    from deepfake_detect.training import HeadRun

logger = logging.getLogger(__name__)

SplitBy = Literal["source", "clip"]
KEY_COLUMN = "clip_key"
_REDRAWS = 20


class SplitError(ValueError):
    """The manifest cannot be split as asked (too few clips or groups, missing columns)."""


class LeakageError(AssertionError):
    """A split puts the same clip (or, with split_by=source, the same source video) on two sides."""


@dataclass(frozen=True)
class Split:
    """One repetition's partition of the labelled clips (row subsets of the manifest)."""

    repeat: int
    seed: int
    split_by: SplitBy
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    def sides(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def summary(self) -> dict[str, int]:
        """Clip counts per side and class, and source groups shared between test and training data."""
        out: dict[str, int] = {}
        for side, frame in self.sides().items():
            out[f"n_{side}"] = len(frame)
            out[f"n_{side}_fake"] = int((frame["label"] == 1).sum())
            out[f"n_{side}_videos"] = int(frame["video_id"].nunique())
        out["n_test_sources"] = int(group_ids(self.test).nunique())
        out["test_sources_in_train_or_val"] = len(shared_sources(self))
        return out


def group_ids(rows: pd.DataFrame) -> pd.Series:
    """The source group of each row: ``source_id`` where present, else the row's own ``video_id``."""
    if "source_id" not in rows.columns:
        return rows["video_id"].astype(str)
    source = rows["source_id"].astype("string").fillna("").str.strip()
    return source.mask(source == "", rows["video_id"].astype(str)).astype(str)


def shared_sources(split: Split) -> set[str]:
    """Source groups with clips in the test set and in the training or validation set."""
    test = set(group_ids(split.test))
    seen = set(group_ids(split.train)) | set(group_ids(split.val))
    return test & seen


def check_no_leakage(split: Split) -> None:
    """Raise :class:`LeakageError` if a clip (or, for split_by=source, a source group) is on two sides."""
    sides = split.sides()
    keys = {name: set(frame[KEY_COLUMN]) for name, frame in sides.items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        common = keys[a] & keys[b]
        if common:
            raise LeakageError(f"{len(common)} clip(s) in both {a} and {b}, e.g. {sorted(common)[0]}")
    if split.split_by == "source":
        groups = {name: set(group_ids(frame)) for name, frame in sides.items()}
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            common = groups[a] & groups[b]
            if common:
                raise LeakageError(f"source video(s) on both {a} and {b}: {sorted(common)[:3]}")


def _take_groups(
    sizes: pd.Series, order: Iterable[str], target: int, exclude: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """Greedily take groups (in ``order``) whose clips fit in ``target``; at least one group if target > 0."""
    taken: list[str] = []
    total = 0
    for group in order:
        if group in exclude or total >= target:
            continue
        if total + int(sizes[group]) <= target:
            taken.append(group)
            total += int(sizes[group])
    if not taken and target > 0:
        remaining = [g for g in order if g not in exclude]
        if remaining:
            taken.append(min(remaining, key=lambda g: int(sizes[g])))
    return taken


def _draw_by_source(
    rows: pd.DataFrame, test_clips: int, val_clips: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    groups = group_ids(rows)
    sizes = groups.value_counts()
    order = [str(g) for g in rng.permutation(np.array(sorted(sizes.index), dtype=object))]
    test_groups = set(_take_groups(sizes, order, test_clips))
    val_groups = set(_take_groups(sizes, order, val_clips, exclude=test_groups))
    return groups.isin(test_groups).to_numpy(), groups.isin(val_groups).to_numpy()


def _draw_by_clip(
    rows: pd.DataFrame, test_clips: int, val_clips: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(len(rows))
    test = np.zeros(len(rows), dtype=bool)
    val = np.zeros(len(rows), dtype=bool)
    test[perm[:test_clips]] = True
    val[perm[test_clips : test_clips + val_clips]] = True
    return test, val


def _validate(rows: pd.DataFrame, test_clips: int, val_clips: int) -> None:
    missing = {KEY_COLUMN, "video_id", "label"} - set(rows.columns)
    if missing:
        raise SplitError(f"manifest rows lack column(s) {sorted(missing)}")
    if rows[KEY_COLUMN].duplicated().any():
        raise SplitError("manifest rows have duplicate clip keys")
    if not rows["label"].isin([0, 1]).all():
        raise SplitError("every clip in an experiment needs a label 0 (real) or 1 (fake)")
    if len(rows) < test_clips + val_clips + 1:
        raise SplitError(
            f"{len(rows)} labelled clips cannot give {test_clips} test + {val_clips} validation clips "
            "and a non-empty training set: lower experiment.test_clips / experiment.val_clips"
        )


def split_once(
    rows: pd.DataFrame, *, test_clips: int, val_clips: int, split_by: SplitBy, seed: int, repeat: int = 0
) -> Split:
    """Draw one split of ``rows`` (deterministic in ``(seed, repeat)``); see the module docstring."""
    _validate(rows, test_clips, val_clips)
    rows = rows.reset_index(drop=True)
    draw = _draw_by_source if split_by == "source" else _draw_by_clip
    rng = np.random.default_rng([seed, repeat])
    both_classes = rows["label"].nunique() == 2
    for attempt in range(_REDRAWS):
        test, val = draw(rows, test_clips, val_clips, rng)
        if not both_classes or rows.loc[test, "label"].nunique() == 2:
            break
        logger.debug("repeat %d: test draw %d holds one class, redrawing", repeat, attempt)
    train = ~(test | val)
    if not train.any():
        raise SplitError("no clip left for training: lower experiment.test_clips / experiment.val_clips")
    split = Split(repeat, seed, split_by, rows[train], rows[val], rows[test])
    check_no_leakage(split)
    return split


def make_splits(
    rows: pd.DataFrame, *, repeats: int, test_clips: int, val_clips: int, split_by: SplitBy, seed: int
) -> list[Split]:
    """``repeats`` independent random splits (repetition r uses the random stream ``(seed, r)``)."""
    return [
        split_once(rows, test_clips=test_clips, val_clips=val_clips, split_by=split_by, seed=seed, repeat=r)
        for r in range(repeats)
    ]


def train_split_head(
    config: Config, embeddings: Mapping[str, np.ndarray], split: Split, out_dir: Path, head: str
) -> HeadRun:
    """``head`` trained quietly on the embeddings of ``split``'s training clips; its validation clips, if it
    has any, choose the epoch kept (``head.keep``). Every head of an experiment is trained this way."""
    from deepfake_detect.training import train_head

    val = split.val if len(split.val) else None
    return train_head(config, embeddings, split.train, val, out_dir, head=head, progress=False)
