"""The model an experiment leaves behind, and its card (SPEC §9 'card').

The repetitions measure how well the *recipe* works: each trains on part of the clips and is scored on
clips it never saw. The final model applies the same recipe once more to (nearly) all labelled clips:
``experiment.val_clips`` clips, grouped as the splits group them, are held out to fit the temperature
(they choose nothing else), and everything else is trained on. It has no test set of its own, so its card
quotes the repetitions' test ROC AUC (mean and 95% interval) as what to expect of it. With
``experiment.final_model: rep0`` the model of repetition 0 is kept instead (faster; it saw fewer clips).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from deepfake_detect.config import Config
from deepfake_detect.data.store import ClipStore
from deepfake_detect.experiment.splits import Split, split_once
from deepfake_detect.experiment.summary import stats
from deepfake_detect.models import FeatureExtractor
from deepfake_detect.models.calibration import at_bound, fit_temperature
from deepfake_detect.models.cards import synthetic_card
from deepfake_detect.models.io import save_model_dir
from deepfake_detect.training import HeadRun, embed_clips, predict_clips, train_extractor, train_head

logger = logging.getLogger(__name__)

T = TypeVar("T")
Runner = Callable[[str, str, Callable[[], T]], T]  # the experiment clock: (kind, label, fn) -> fn()

FINAL_SEED_OFFSET = 10_000  # the final model's seed stream is seed + this (apart from every repetition)


def expected_auc(test_aucs: Sequence[float]) -> dict[str, Any]:
    """The repetitions' clip-level test ROC AUC: mean, sample std and Student-t 95% interval."""
    summary = stats(np.asarray(list(test_aucs), dtype=float))
    return {
        "clip_roc_auc": summary["mean"],
        "std": summary["std"],
        "ci95": summary["ci95"],
        "repetitions": summary["n"],
        "source": "test clips of the experiment's repetitions (the final model has no test set of its own)",
    }


def final_split(config: Config, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training clips, calibration clips): all labelled clips but ``val_clips`` held out for T."""
    exp = config.experiment
    if exp.val_clips == 0:
        return rows, rows.iloc[:0]
    held = split_once(
        rows,
        test_clips=exp.val_clips,
        val_clips=0,
        split_by=exp.split_by,
        seed=config.seed + FINAL_SEED_OFFSET,
    )
    return held.train, held.test


def train_final_model(
    config: Config, store: ClipStore, rows: pd.DataFrame, out_dir: Path, run: Runner[Any]
) -> tuple[FeatureExtractor, HeadRun, float, pd.DataFrame, pd.DataFrame]:
    """Train the main extractor and head on the final split; fit the temperature on its held-out clips."""
    train, calib = final_split(config, rows)
    cfg = config.model_copy(deep=True)
    cfg.seed = config.seed + FINAL_SEED_OFFSET
    ext = run(
        "extractor:final",
        f"final model: train extractor on {len(train)} clips",
        lambda: train_extractor(cfg, store, train, None, out_dir / "extractor", progress=False),
    )
    keys = pd.concat([train, calib])
    embeddings = run(
        "embed:final",
        "final model: embed clips",
        lambda: embed_clips(
            ext.extractor, store, keys, out_dir.parent / "cache", digest=ext.digest, progress=False
        ),
    )
    head = run(
        f"head:{cfg.head.name}",
        f"final model: train {cfg.head.name}",
        lambda: train_head(
            cfg, embeddings, train, None, out_dir / cfg.head.name, head=cfg.head.name, progress=False
        ),
    )
    temperature = _temperature(head, embeddings, calib)
    return ext.extractor, head, temperature, train, calib


def _temperature(head: HeadRun, embeddings: Mapping[str, np.ndarray], calib: pd.DataFrame) -> float:
    if calib.empty:
        return 1.0
    return fit_temperature(predict_clips(head.head, embeddings, calib), calib["label"].to_numpy(dtype=float))


def model_card(
    config: Config,
    *,
    trained_on: str,
    n_train: int,
    n_calibration: int,
    test_aucs: Sequence[float],
    data: str,
) -> dict[str, Any]:
    """The card's ``training`` and ``expected_auc`` objects."""
    exp = config.experiment
    return {
        "training": {
            "data": data,
            "trained_on": trained_on,
            "training_clips": n_train,
            "calibration_clips": n_calibration,
            "split_by": exp.split_by,
            "seed": config.seed,
            "repetitions": exp.repeats,
            "extractor": config.extractor.backbone,
            "head": config.head.name,
            "precision": config.extractor.precision,
            "cpu_kernels": exp.cpu_kernels,
            "chosen_by": "nothing: the config fixes the recipe; held-out clips only fit the temperature",
        },
        "expected_auc": expected_auc(test_aucs),
    }


def save_final_model(
    path: Path,
    config: Config,
    extractor: FeatureExtractor,
    head_run: HeadRun,
    temperature: float,
    card: dict[str, Any],
    extra: dict[str, Any],
) -> Path:
    return save_model_dir(
        path,
        extractor,
        head_run.head,
        head_name=head_run.head_name,
        head_kwargs=head_run.head_kwargs,
        threshold=config.head.threshold,
        faces=config.faces,
        clips=config.clips,
        extra=extra,
        temperature=temperature,
        card=card,
    )


Rep0 = tuple[FeatureExtractor, HeadRun, float, Split]  # repetition 0's main extractor, head, T, split


def temperature_warning(temperature: float) -> str | None:
    """The card's warning when the final model's temperature is at the bound of its fit (else None)."""
    if not at_bound(temperature):
        return None
    effect = (
        "every calibrated probability is near 0.5"
        if temperature > 1
        else "calibrated probabilities are 0 or 1"
    )
    return (
        f"the temperature fit hit its bound (T = {temperature:.4g}): {effect}; the held-out clips' scores "
        "gave no usable calibration"
    )


def write_final_model(
    config: Config,
    store: ClipStore,
    rows: pd.DataFrame,
    out_dir: Path,
    model_dir: Path,
    run: Runner[Any],
    rep0: Rep0 | None,
    test_aucs: Sequence[float],
) -> dict[str, Any]:
    """Train (``final_model: all``) or take (``rep0``) the final model, write it with its card."""
    if config.experiment.final_model == "all" or rep0 is None:
        extractor, head_run, temperature, train, calib = train_final_model(
            config, store, rows, out_dir / "final", run
        )
        trained_on = (
            f"all {len(rows)} labelled clips except {len(calib)} held out (split by "
            f"{config.experiment.split_by}) to fit the temperature, after the repetitions"
        )
    else:
        extractor, head_run, temperature, split = rep0
        train, calib = split.train, split.val
        trained_on = f"repetition 0's training split ({len(train)} clips; T fitted on {len(calib)} others)"
    datasets = ", ".join(sorted(str(d) for d in rows["dataset"].unique()))
    data = f"{len(rows)} labelled clips of {rows['video_id'].nunique()} videos ({datasets})"
    card = model_card(
        config,
        trained_on=trained_on,
        n_train=len(train),
        n_calibration=len(calib),
        test_aucs=test_aucs,
        data=data,
    )
    if config.data.synth is not None:  # every output that uses this model must say so (SPEC §9)
        card = {**synthetic_card("the built-in benchmark (SPEC 6)"), **card}
    if warning := temperature_warning(temperature):
        logger.warning("final model: %s", warning)
        card = {**card, "warnings": [*card.get("warnings", []), warning]}
    extra = {"trained_on": trained_on, "split_by": config.experiment.split_by, "experiment_dir": out_dir.name}
    save_final_model(model_dir, config, extractor, head_run, temperature, card, extra)
    logger.info("final model written to %s", model_dir)
    return {"trained_on": trained_on, "temperature": temperature, "card": card}
