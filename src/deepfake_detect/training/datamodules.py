"""Torch datasets for training: frame windows read from the clip store, and cached clip embeddings.

* :class:`ClipWindowDataset` (extractor training): ``window`` consecutive crops of a clip, read straight from
  the clip's JPEG files (only the window's frames are decoded). In training the window start is drawn at
  random, deterministically from (seed, epoch, clip index), so a resumed run sees the same windows as an
  uninterrupted one; in validation it is the clip's first window.
* :class:`EmbeddingDataset` (detector training / prediction): a clip's float16 (T, D) embeddings as float32,
  batched by :func:`pad_collate` into right-padded (B, T_max, D) tensors with their lengths.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler

from deepfake_detect.data.store import ClipStore, clip_keys, frame_rows

logger = logging.getLogger(__name__)

Transform = Callable[[torch.Tensor], torch.Tensor]


def clip_labels(rows: pd.DataFrame, *, allow_unknown: bool = False) -> np.ndarray:
    """The ``label`` column as float32 (1 fake, 0 real); unknown labels (-1) raise unless allowed."""
    labels = rows["label"].to_numpy(dtype=np.int64)
    bad = ~np.isin(labels, (0, 1))
    if bad.any() and not allow_unknown:
        keys = clip_keys(rows[bad].head(5))
        raise ValueError(
            f"{int(bad.sum())} clip(s) have no usable label (1 fake / 0 real), e.g. {keys}; "
            "drop unlabelled rows before training"
        )
    return labels.astype(np.float32)


def read_frames(paths: Sequence[Path], cache: FrameCache | None = None) -> np.ndarray:
    """Decode crop images (as the clip store does: PIL, RGB) into uint8 (T, H, W, 3), through ``cache``."""
    from PIL import Image

    images = []
    for path in paths:
        image = cache.get(path) if cache is not None else None
        if image is None:
            try:
                with Image.open(path) as opened:
                    image = np.asarray(opened.convert("RGB"))
            except FileNotFoundError:
                raise FileNotFoundError(f"crop {path} is missing from the clip store") from None
            if cache is not None:
                cache.put(path, image)
        images.append(image)
    return np.stack(images)  # (T, H, W, 3)


class FrameCache:
    """Decoded crops kept in memory up to ``budget_mb``, first come first kept (no eviction).

    Training draws a new window of every clip each epoch, so the same JPEGs are decoded epoch after epoch;
    with the crops cached, later epochs decode only what did not fit. Without eviction a shuffled order
    cannot thrash it: a store larger than the budget gets a steady hit rate of about budget / store size.
    Each process (and each loader worker) holds its own cache.
    """

    def __init__(self, budget_mb: float) -> None:
        self.budget = int(budget_mb * 2**20)
        self.used = 0
        self.frames: dict[Path, np.ndarray] = {}

    def get(self, path: Path) -> np.ndarray | None:
        return self.frames.get(path)

    def put(self, path: Path, image: np.ndarray) -> None:
        if self.used + image.nbytes <= self.budget and path not in self.frames:
            image.setflags(write=False)  # shared by every window that contains it
            self.frames[path] = image
            self.used += image.nbytes


class ClipWindowDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Windows of ``window`` consecutive frames from the clips of ``rows`` with their labels.

    Items are ``(frames, label)``: frames uint8 (window, H, W, 3), or ``transform(frames)`` when a
    transform is given (e.g. ``FeatureExtractor.prepare`` to prepare in the loader workers); label float32
    (). Clips shorter than ``window`` are skipped with a warning. ``cache_mb`` > 0 keeps decoded crops in
    a :class:`FrameCache` of that size.
    """

    def __init__(
        self,
        store: ClipStore,
        rows: pd.DataFrame,
        window: int,
        *,
        random_window: bool,
        seed: int = 0,
        transform: Transform | None = None,
        cache_mb: float = 0.0,
    ) -> None:
        if window < 2:
            raise ValueError(f"a training window needs at least 2 frames, got {window}")
        long_enough = rows[rows["n_frames"].astype(int) >= window]
        if len(long_enough) < len(rows):
            logger.warning("skipping %d clip(s) shorter than %d frames", len(rows) - len(long_enough), window)
        if long_enough.empty:
            raise ValueError(f"no clip has at least {window} frames (extractor_clip_len); lower it")
        self.labels = clip_labels(long_enough)
        self.paths = [store.clip_paths(row) for row in frame_rows(long_enough)]
        self.window = window
        self.random_window = random_window
        self.seed = seed
        self.epoch = 0
        self.transform = transform
        self.cache = FrameCache(cache_mb) if cache_mb > 0 else None

    def set_epoch(self, epoch: int) -> None:
        """Choose the training windows of ``epoch`` (called before each epoch's loader is iterated)."""
        self.epoch = epoch

    def window_start(self, index: int, epoch: int | None = None) -> int:
        """First frame of clip ``index``'s window in ``epoch`` (default: the epoch of :meth:`set_epoch`)."""
        n = len(self.paths[index])
        if not self.random_window or n == self.window:
            return 0
        rng = np.random.default_rng((self.seed, self.epoch if epoch is None else epoch, index))
        return int(rng.integers(0, n - self.window + 1))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``item`` is a clip index, or ``(epoch, index)`` from :class:`EpochWindowSampler`."""
        epoch, index = item if isinstance(item, tuple) else (None, item)
        start = self.window_start(index, epoch)
        window = read_frames(self.paths[index][start : start + self.window], self.cache)  # (W, H, W, 3)
        frames = torch.from_numpy(window)
        if self.transform is not None:
            frames = self.transform(frames)  # (W, 3, S, S)
        return frames, torch.tensor(self.labels[index])


class EmbeddingDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Cached clip embeddings of ``rows`` (looked up by clip key) as float32 (T, D), with labels.

    With ``allow_unknown`` (prediction) rows without a label are kept (label -1).
    """

    def __init__(
        self, embeddings: Mapping[str, np.ndarray], rows: pd.DataFrame, *, allow_unknown: bool = False
    ) -> None:
        self.keys = clip_keys(rows)
        missing = [k for k in self.keys if k not in embeddings]
        if missing:
            raise KeyError(f"no embeddings for {len(missing)} clip(s), e.g. {missing[:3]}; run embed first")
        self.embeddings = embeddings
        self.labels = clip_labels(rows, allow_unknown=allow_unknown)

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        emb = np.asarray(self.embeddings[self.keys[index]], dtype=np.float32)  # (T, D)
        if emb.ndim != 2 or emb.shape[0] < 1:
            raise ValueError(f"embeddings of {self.keys[index]} must be (T >= 1, D), got {emb.shape}")
        return torch.from_numpy(emb), torch.tensor(self.labels[index])


def pad_collate(batch: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    """[(x (T_i, D), y ())] -> x (B, T_max, D) zero-padded on the right, lengths (B,) int64, y (B,)."""
    lengths = torch.tensor([x.shape[0] for x, _ in batch], dtype=torch.int64)  # (B,)
    x = torch.nn.utils.rnn.pad_sequence([x for x, _ in batch], batch_first=True)  # (B, T_max, D)
    y = torch.stack([y for _, y in batch])  # (B,)
    return x, lengths, y


class EpochShuffleSampler(Sampler[int]):
    """A shuffle that depends only on (seed, epoch): a resumed run sees the order an uninterrupted one would.

    Lightning calls :meth:`set_epoch` before every training epoch. (Multi-process runs use Lightning's own
    ``DistributedSampler``, which is seeded per epoch the same way.)
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())


class EpochWindowSampler(Sampler[tuple[int, int]]):
    """:class:`EpochShuffleSampler`'s order, each index tagged with its epoch: ``(epoch, index)``.

    The sampler runs in the main process, where Lightning sets its epoch; the tag carries the epoch to
    the dataset, so persistent loader workers (started once, not every epoch) still draw each epoch's
    windows, and a resumed run draws the windows an uninterrupted one would.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self.order = EpochShuffleSampler(size, seed)

    def set_epoch(self, epoch: int) -> None:
        self.order.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.order.epoch
        return ((epoch, index) for index in self.order)


def loader_kwargs(num_workers: int, *, persistent: bool = False) -> dict[str, Any]:
    """DataLoader options for ``num_workers``.

    Persistent workers start once per fit instead of once per epoch (the time saved per epoch:
    benchmarks/RESULTS.md, "Figures behind the code"); use them only where the items carry their epoch
    (:class:`EpochWindowSampler`). Otherwise workers start for each epoch, after
    :meth:`ClipWindowDataset.set_epoch`, so that they draw that epoch's windows.
    """
    if num_workers <= 0:
        return {"num_workers": 0}
    return {"num_workers": num_workers, "persistent_workers": persistent}
