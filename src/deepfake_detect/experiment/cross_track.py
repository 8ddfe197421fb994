"""Cross-track robustness (``experiment.cross_track``): does a model trained on one fake kind catch another?

The synthetic benchmark has two tracks (SPEC §6): ``temporal`` fakes differ from their originals only in how
the face moves from frame to frame, ``spatial`` fakes only in what each frame looks like. With
``experiment.cross_track: true`` on a ``temporal`` or ``spatial`` synthetic experiment:

- a fresh synthetic set of the *other* track is generated into ``OUT/cross_track/<track>/synth`` with the
  same generator settings and a seed no training set uses (:func:`cross_track_seed`), preprocessed like the
  experiment's videos, and repetition 0's trained model (its extractor and each main head) scores all of
  its labelled clips;
- with ``experiment.cross_track_reverse`` (the default) the reverse direction costs one extra small
  training, the recipe of repetition 0 on the other track: the fresh set is split like a repetition, the
  extractor and each head train on its training clips, and score its held-out test clips (the in-track
  reference of that model) and repetition 0's test clips of this track.

Each row's AUC comes with a 95% bootstrap interval over source videos (clips of one scene, real and fake,
are resampled together, as the splits keep them together). The scored probabilities of each row are in
``OUT/cross_track/<row>.csv`` (one column per head), so every AUC can be recomputed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepfake_detect.config import Config
from deepfake_detect.data.store import ClipStore
from deepfake_detect.evaluation.evaluate import write_csv
from deepfake_detect.evaluation.metrics import roc_auc
from deepfake_detect.models import FeatureExtractor
from deepfake_detect.training import HeadRun, embed_clips, extractor_digest, predict_clips, train_extractor

logger = logging.getLogger(__name__)

OTHER_TRACK = {"temporal": "spatial", "spatial": "temporal"}
CROSS_SEED_OFFSET = 1_000_000  # above every training seed (seed .. seed + replications - 1)
BOOTSTRAP_RESAMPLES = 1000
_KEEP = ["clip_key", "video_id", "source_id", "label"]


def cross_track_seed(config: Config) -> int:
    """The generator seed of the other track's set: past every replication's seed, so no scene repeats."""
    synth = config.data.synth
    if synth is None:
        raise ValueError("the cross-track table needs data.synth")
    base = config.seed if synth.seed is None else synth.seed
    return base + synth.replications + CROSS_SEED_OFFSET


def bootstrap_auc_interval(
    labels: np.ndarray,
    probabilities: np.ndarray,
    groups: Sequence[Any] | np.ndarray | pd.Series,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """95% percentile interval of the ROC AUC, resampling whole groups (e.g. source videos) with replacement.

    Resamples that hold one class only are skipped; NaNs when fewer than two groups or no resample has
    both classes. Deterministic in ``seed``.
    """
    labels = np.asarray(labels, dtype=int)
    probabilities = np.asarray(probabilities, dtype=float)
    codes, uniques = pd.factorize(pd.Series(list(groups)))
    members = [np.flatnonzero(codes == g) for g in range(len(uniques))]
    if len(members) < 2:
        return _nan_pair()
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(resamples):
        index = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        y = labels[index]
        if y.min() != y.max():
            aucs.append(roc_auc(y, probabilities[index]))
    if not aucs:
        return _nan_pair()
    low, high = np.percentile(aucs, [2.5, 97.5])
    return float(low), float(high)


def _nan_pair() -> tuple[float, float]:
    return float("nan"), float("nan")


def score_clips(
    extractor: FeatureExtractor,
    heads: Mapping[str, HeadRun],
    store: ClipStore,
    rows: pd.DataFrame,
    cache: Path,
) -> pd.DataFrame:
    """``rows``' key columns plus one column of fake probabilities per head."""
    embeddings = embed_clips(
        extractor, store, rows, cache, digest=extractor_digest(extractor), progress=False
    )
    table = rows[_KEEP].reset_index(drop=True).copy()
    for name, run in heads.items():
        table[name] = predict_clips(run.head, embeddings, rows)
    return table


def _row(
    train_track: str, test_track: str, test_set: str, table: pd.DataFrame, heads: Sequence[str], path: Path
) -> dict[str, Any]:
    y = table["label"].to_numpy(int)
    cells: dict[str, dict[str, Any]] = {}
    for head in heads:
        p = table[head].to_numpy(float)
        if len(np.unique(y)) < 2:
            cells[head] = {"roc_auc": float("nan"), "ci95": [float("nan"), float("nan")]}
            continue
        cells[head] = {
            "roc_auc": roc_auc(y, p),
            "ci95": list(bootstrap_auc_interval(y, p, table["source_id"].astype(str))),
        }
    write_csv(path, table)
    logger.info(
        "cross-track %s -> %s (%s): %s",
        train_track,
        test_track,
        test_set,
        ", ".join(f"{h} {c['roc_auc']:.3f}" for h, c in cells.items()),
    )
    return {
        "train_track": train_track,
        "test_track": test_track,
        "test_set": test_set,
        "clips": len(table),
        "videos": int(table["video_id"].nunique()),
        "sources": int(table["source_id"].nunique()),
        "heads": cells,
        "predictions": path.name,
    }


def _labelled(store: ClipStore) -> pd.DataFrame:
    from deepfake_detect.experiment.runner import load_labelled_clips

    return load_labelled_clips(store)


def _other_track_store(config: Config, out_dir: Path, track: str) -> ClipStore:
    """Generate (or reuse) and preprocess the other track's synthetic set under ``out_dir/<track>``."""
    from deepfake_detect.experiment.prepare import make_synth
    from deepfake_detect.preprocess import preprocess_dataset

    other = config.model_copy(deep=True)
    assert other.data.synth is not None
    other.data.synth.track = track  # type: ignore[assignment]
    other.data.synth.replications = 1
    records = make_synth(
        other, out_dir / track / "synth", name=f"cross-{track}", seed=cross_track_seed(config)
    )
    store = ClipStore(out_dir / track / "clips")
    preprocess_dataset(records, store.root, config, workers=config.preprocess.workers)
    return store


def _train_reverse(
    config: Config, store: ClipStore, rows: pd.DataFrame, heads: Sequence[str], out_dir: Path, cache: Path
) -> tuple[FeatureExtractor, dict[str, HeadRun], pd.DataFrame]:
    """Repetition 0's recipe on the other track's clips: (extractor, heads, held-out test clips)."""
    from deepfake_detect.experiment.splits import split_once, train_split_head

    exp = config.experiment
    split = split_once(
        rows,
        test_clips=exp.test_clips,
        val_clips=exp.val_clips,
        split_by=exp.split_by,
        seed=config.seed,
        repeat=0,
    )
    val = split.val if len(split.val) else None
    run = train_extractor(config, store, split.train, val, out_dir / "extractor", progress=False)
    embeddings = embed_clips(
        run.extractor,
        store,
        pd.concat(list(split.sides().values())),
        cache,
        digest=run.digest,
        progress=False,
    )
    trained = {head: train_split_head(config, embeddings, split, out_dir / head, head) for head in heads}
    return run.extractor, trained, split.test


def cross_track_table(
    config: Config,
    store: ClipStore,
    test_rows: pd.DataFrame,
    extractor: FeatureExtractor,
    heads: Mapping[str, HeadRun],
    out_dir: Path,
    *,
    cache: Path,
    reverse: bool = True,
) -> dict[str, Any]:
    """The cross-track table of a model trained on ``config.data.synth.track`` (see the module docstring).

    ``store``/``test_rows``: the experiment's clip store and repetition 0's test clips (with ``clip_key``);
    ``extractor``/``heads``: repetition 0's model; ``cache``: the experiment's embedding cache (the other
    track's clips get their own, as their clip keys may repeat this track's).
    """
    start = time.perf_counter()
    synth = config.data.synth
    if synth is None or synth.track not in OTHER_TRACK:
        raise ValueError("the cross-track table needs data.synth with track temporal or spatial")
    track, other = synth.track, OTHER_TRACK[synth.track]
    out_dir = Path(out_dir)
    names = list(heads)
    other_store = _other_track_store(config, out_dir, other)
    other_rows = _labelled(other_store)
    other_cache = out_dir / other / "cache"
    rows = [
        _row(
            track,
            track,
            "repetition 0 test clips",
            score_clips(extractor, heads, store, test_rows, cache),
            names,
            out_dir / f"{track}_on_{track}.csv",
        ),
        _row(
            track,
            other,
            f"all clips of a fresh {other} set",
            score_clips(extractor, heads, other_store, other_rows, other_cache),
            names,
            out_dir / f"{track}_on_{other}.csv",
        ),
    ]
    if reverse:
        rev_extractor, rev_heads, held_out = _train_reverse(
            config, other_store, other_rows, names, out_dir / other / "model", other_cache
        )
        rows.append(
            _row(
                other,
                other,
                f"test clips held out of the fresh {other} set",
                score_clips(rev_extractor, rev_heads, other_store, held_out, other_cache),
                names,
                out_dir / f"{other}_on_{other}.csv",
            )
        )
        rows.append(
            _row(
                other,
                track,
                "repetition 0 test clips",
                score_clips(rev_extractor, rev_heads, store, test_rows, out_dir / track / "cache"),
                names,
                out_dir / f"{other}_on_{track}.csv",
            )
        )
    seconds = time.perf_counter() - start
    logger.info("cross-track table: %d rows in %.0f s", len(rows), seconds)
    return {
        "track": track,
        "other_track": other,
        "seed": cross_track_seed(config),
        "videos": synth.videos,
        "heads": names,
        "main_head": config.head.name,
        "reverse": reverse,
        "rows": rows,
        "seconds": round(seconds, 1),
    }


def cross_track_rows(config: Config, store: ClipStore, result: Any, out_dir: Path) -> dict[str, Any]:
    """experiment.cross_track: the table for an experiment's result on ``store`` (``{}`` when off or not
    applicable); files under ``out_dir/cross_track``."""
    if not config.experiment.cross_track:
        return {}
    synth = config.data.synth
    if synth is None or synth.track not in OTHER_TRACK:
        logger.warning(
            "experiment.cross_track needs data.synth with track temporal or spatial; no cross-track table"
        )
        return {}
    if result.rep0_model is None or not result.rep0_heads:
        return {}
    extractor, _, _, split = result.rep0_model
    return cross_track_table(
        config,
        store,
        split.test,
        extractor,
        result.rep0_heads,
        Path(out_dir) / "cross_track",
        cache=Path(result.out_dir) / "cache" / "embeddings",
        reverse=config.experiment.cross_track_reverse,
    )
