"""The paper's protocol as one run (SPEC §2 'Evaluation', 'Splits without leakage').

For every repetition ``r`` of ``experiment.repeats``:

1. split the labelled clips (:mod:`.splits`, ``split_by`` source or clip, stream ``(seed, r)``);
2. for each extractor *variant* needed (the main ``extractor`` section always; the Table 2 backbones on the
   first ``table2_repeats`` repetitions): train it with the hinge loss on the training clips (validation clips
   only for the loss curves), or take it untrained / user-weighted when ``hinge`` is false;
3. embed every labelled clip with it (cached per weights digest) and score the test clips' dispersion
   without any head (:mod:`.diagnostics`);
4. train each sequence head on the training clips' embeddings (Table 3 heads for the main variant, the main
   head for the others; with ``head.keep: best`` the validation clips choose each head's best epoch)
   and predict the test clips;
5. evaluate at clip and video level.

No trained part ever sees a test clip: each repetition retrains everything it uses. Table 1 is the main
variant with the main head over the repetitions; Table 2 the variants with the main head; Table 3 the main
variant with every head. When ``model_dir`` is given, the final model (:mod:`.final`: by default trained
after the repetitions on all labelled clips but those that fit its temperature) is written there with a
card that quotes the repetitions' test AUC.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from deepfake_detect.config import Config, ExtractorConfig
from deepfake_detect.data.store import ClipStore, clip_keys
from deepfake_detect.evaluation.evaluate import (
    clip_predictions,
    compute_metrics,
    evaluate_predictions,
    video_predictions,
    write_csv,
)
from deepfake_detect.experiment.diagnostics import dispersion_auc, single_frame_summary
from deepfake_detect.experiment.environment import code_revision, experiment_environment
from deepfake_detect.experiment.final import write_final_model
from deepfake_detect.experiment.frame_model import FrameModelRows, frame_model_stages, load_frame_model_rows
from deepfake_detect.experiment.splits import KEY_COLUMN, Split, make_splits, split_once, train_split_head
from deepfake_detect.infra.runtime import cpu_seconds
from deepfake_detect.models import FeatureExtractor
from deepfake_detect.models.calibration import apply_temperature, fit_temperature
from deepfake_detect.training import (
    HeadRun,
    embed_clips,
    predict_clips,
    train_extractor,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
StageCallback = Callable[[str, int, int], None]
"""Called with (stage description, stages completed, stages in total) before each stage and at the end."""


class ExperimentError(ValueError):
    """The experiment cannot run as configured (no labelled clips, unknown names...)."""


@dataclass(frozen=True)
class Variant:
    """One feature-extractor configuration (a Table 2 row; ``main`` is the configured extractor)."""

    name: str
    extractor: ExtractorConfig
    main: bool

    @property
    def trained(self) -> bool:
        return self.extractor.hinge and self.extractor.epochs > 0


@dataclass
class HeadResult:
    """One (extractor variant, head) pair on one repetition's test clips."""

    variant: str
    head: str
    clip: dict[str, float]
    video: dict[str, float]
    predictions: pd.DataFrame
    history: pd.DataFrame
    single_frame: dict[str, float] = field(default_factory=dict)  # see diagnostics.single_frame_summary
    temperature: float = 1.0  # fitted on the repetition's validation clips (evaluation.calibration)


@dataclass
class RepetitionResult:
    repeat: int
    split: dict[str, int]
    results: list[HeadResult] = field(default_factory=list)
    extractor_histories: dict[str, pd.DataFrame] = field(default_factory=dict)
    dispersion_auc: dict[str, float] = field(default_factory=dict)  # variant -> ROC AUC, no head trained

    def get(self, variant: str, head: str) -> HeadResult | None:
        return next((r for r in self.results if r.variant == variant and r.head == head), None)


@dataclass
class ExperimentResult:
    config: Config
    variants: list[Variant]
    repetitions: list[RepetitionResult]
    n_clips: int
    n_videos: int
    frames_per_clip: tuple[int, int]  # (min, max) over the labelled clips
    datasets: list[str]
    out_dir: Path
    model_dir: Path | None
    timings: dict[str, float]
    table2_repeats: int
    environment: dict[str, Any] = field(default_factory=dict)  # see experiment.environment
    final_model: dict[str, Any] = field(default_factory=dict)  # trained_on, temperature, card
    cpu_timings: dict[str, float] = field(default_factory=dict)  # stage kind -> CPU seconds
    rep0_model: tuple[FeatureExtractor, HeadRun, float, Split] | None = None  # for robustness tables
    frame_model: FrameModelRows | None = None  # experiment.frame_model's rows (.frame_model)
    rep0_heads: dict[str, HeadRun] = field(default_factory=dict)  # main variant's heads (cross-track table)


def write_split(split: Split, path: Path) -> Path:
    """The repetition's partition: clip_key, video_id, source_id, track, clip_index, label, side."""
    columns = [KEY_COLUMN, "video_id", "source_id", "track", "clip_index", "label"]
    parts = [frame[columns].assign(side=side) for side, frame in split.sides().items()]
    return write_csv(path, pd.concat(parts, ignore_index=True))


def make_variants(config: Config) -> list[Variant]:
    """The main extractor plus one variant per Table 2 backbone (one equal to the main one is shared)."""
    main = Variant(config.extractor.backbone, config.extractor, main=True)
    variants = [main]
    for name in config.experiment.table2_backbones:
        changes = {"backbone": name, **config.experiment.table2_overrides.get(name, {})}
        try:
            extractor = ExtractorConfig.model_validate({**config.extractor.model_dump(), **changes})
        except ValueError as exc:
            raise ExperimentError(f"experiment.table2_overrides[{name!r}]: {exc}") from None
        if extractor == main.extractor or any(v.name == name for v in variants):
            continue
        variants.append(Variant(name, extractor, main=False))
    return variants


def load_labelled_clips(store: ClipStore) -> pd.DataFrame:
    """The store's ok clips with a known label, with a ``clip_key`` column."""
    rows = store.clips()
    unknown = int((~rows["label"].isin([0, 1])).sum())
    if unknown:
        logger.warning("%d clip(s) without a label are left out of the experiment", unknown)
    rows = rows[rows["label"].isin([0, 1])].reset_index(drop=True)
    if rows.empty:
        raise ExperimentError(f"the clip store {store.root} holds no labelled clip")
    rows[KEY_COLUMN] = clip_keys(rows)
    return rows


class _Clock:
    """Stage bookkeeping: progress callback and accumulated wall time per stage kind."""

    def __init__(self, total: int, callback: StageCallback | None) -> None:
        self.total, self.done, self.callback = total, 0, callback
        self.timings: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)  # CPU seconds (runtime.cpu_seconds)

    def run(self, kind: str, label: str, fn: Callable[[], T]) -> T:
        if self.callback is not None:
            self.callback(label, self.done, self.total)
        logger.info("%s", label)
        start, cpu = time.perf_counter(), cpu_seconds()
        value = fn()
        self.timings[kind] += time.perf_counter() - start
        self.cpu[kind] += cpu_seconds() - cpu
        self.done += 1
        return value

    def finish(self, label: str = "done") -> None:
        if self.callback is not None:
            self.callback(label, self.total, self.total)


def replicate(config: Config, rows: pd.DataFrame) -> list[Split]:
    """The repetitions' splits: re-splits of all clips, or one split per dataset (``replicate_by``)."""
    exp = config.experiment
    kwargs = {"test_clips": exp.test_clips, "val_clips": exp.val_clips, "split_by": exp.split_by}
    if exp.replicate_by == "split":
        return make_splits(rows, repeats=exp.repeats, seed=config.seed, **kwargs)  # type: ignore[arg-type]
    datasets = sorted(rows["dataset"].unique(), key=lambda d: (len(str(d)), str(d)))
    if len(datasets) < exp.repeats:
        raise ExperimentError(
            f"experiment.replicate_by dataset needs {exp.repeats} datasets (one per repetition), but the "
            f"clips come from {len(datasets)}: set data.synth.replications or lower experiment.repeats"
        )
    return [
        split_once(rows[rows["dataset"] == d], seed=config.seed, repeat=r, **kwargs)  # type: ignore[arg-type]
        for r, d in enumerate(datasets[: exp.repeats])
    ]


def _heads_for(variant: Variant, config: Config) -> list[str]:
    if not variant.main:
        return [config.head.name]
    heads = [config.head.name]
    heads += [h for h in config.experiment.table3_heads if h != config.head.name]
    return heads


def _plan(config: Config, variants: list[Variant], table2_repeats: int) -> list[list[Variant]]:
    return [[v for v in variants if v.main or r < table2_repeats] for r in range(config.experiment.repeats)]


def _stage_count(config: Config, plan: list[list[Variant]]) -> int:
    return 1 + sum(sum(2 + len(_heads_for(v, config)) for v in vs) for vs in plan)


def _variant_config(config: Config, variant: Variant, repeat: int) -> Config:
    """The config one variant trains with: its extractor section; seed + repeat for trained parts."""
    updated = config.model_copy(deep=True)
    updated.extractor = variant.extractor
    # An untrained extractor keeps the base seed (same random weights, so embeddings are cached once).
    updated.seed = config.seed + repeat if variant.trained else config.seed
    return updated


def _run_variant(ctx: _Context, variant: Variant, split: Split, rep: RepetitionResult, rep_dir: Path) -> None:
    cfg = _variant_config(ctx.config, variant, split.repeat)
    tag = f"rep {split.repeat + 1}/{ctx.config.experiment.repeats}"
    vdir = rep_dir / re.sub(r"[^A-Za-z0-9._-]", "_", variant.name)  # "timm:x" -> "timm_x"
    val = split.val if len(split.val) else None
    action = "train extractor" if variant.trained else "load untrained extractor"
    run = ctx.clock.run(
        f"extractor:{variant.name}",
        f"{tag}: {action} {variant.name}",
        lambda: train_extractor(cfg, ctx.store, split.train, val, vdir / "extractor", progress=False),
    )
    rep.extractor_histories[variant.name] = run.history
    embeddings = ctx.clock.run(
        f"embed:{variant.name}",
        f"{tag}: embed the split's clips with {variant.name}",
        lambda: embed_clips(
            run.extractor,
            ctx.store,
            pd.concat(list(split.sides().values())),  # this repetition's clips (all, unless per dataset)
            ctx.out_dir / "cache" / "embeddings",
            digest=run.digest,
            progress=False,
        ),
    )
    rep.dispersion_auc[variant.name] = dispersion_auc(embeddings, split.test)
    for head in _heads_for(variant, ctx.config):
        head_run = ctx.clock.run(
            f"head:{head}",
            f"{tag}: train {head} on {variant.name} embeddings",
            partial(train_split_head, cfg, embeddings, split, vdir / head, head),
        )
        is_main = variant.main and head == ctx.config.head.name
        if variant.main and split.repeat == 0:
            ctx.rep0_heads[head] = head_run
        rep.results.append(_evaluate_head(ctx, variant, head_run, embeddings, split, vdir / head, is_main))
        if is_main and split.repeat == 0:
            ctx.rep0 = (run.extractor, head_run, rep.results[-1].temperature, split)


def _evaluate_head(
    ctx: _Context,
    variant: Variant,
    head_run: HeadRun,
    embeddings: Mapping[str, np.ndarray],
    split: Split,
    out_dir: Path,
    plots: bool,
) -> HeadResult:
    """Predict the test clips, write the evaluation, calibrate on validation and score single frames."""
    probabilities = predict_clips(head_run.head, embeddings, split.test)
    table = clip_predictions(split.test, probabilities)
    ev = ctx.config.evaluation
    evaluation = evaluate_predictions(
        table,
        out_dir / "evaluation",
        eps=ev.eps,
        threshold=ev.threshold,
        aggregation=ev.aggregation,
        title=f"{variant.name} + {head_run.head_name}, repetition {split.repeat}",
        plots=plots,
    )
    frames = single_frame_summary(head_run.head, embeddings, split.test)
    temperature = _validation_temperature(head_run, embeddings, split)
    calibrated = table.assign(fake_probability=apply_temperature(probabilities, temperature))
    clip, video = dict(evaluation.clip), dict(evaluation.video)
    for level, frame in ((clip, calibrated), (video, video_predictions(calibrated, ev.aggregation))):
        level["log_loss_calibrated"] = compute_metrics(frame, eps=ev.eps, threshold=ev.threshold)["log_loss"]
        level["temperature"] = temperature
    table = table.assign(calibrated_probability=calibrated["fake_probability"])
    return HeadResult(
        variant.name, head_run.head_name, clip, video, table, head_run.history, frames, temperature
    )


def _validation_temperature(head_run: HeadRun, embeddings: Mapping[str, np.ndarray], split: Split) -> float:
    """Temperature scaling fitted on the validation clips (never the test clips); 1 without them."""
    if not len(split.val):
        return 1.0
    val = predict_clips(head_run.head, embeddings, split.val)
    return fit_temperature(val, split.val["label"].to_numpy(dtype=float))


def _write_final_model(ctx: _Context, repetitions: list[RepetitionResult]) -> dict[str, Any]:
    """The final model (:mod:`.final`) with its card; returns what the report says about it."""
    if ctx.model_dir is None:
        return {}
    head = ctx.config.head.name
    aucs = [hr.clip["roc_auc"] for r in repetitions if (hr := r.get(ctx.main, head))]
    return write_final_model(
        ctx.config, ctx.store, ctx.rows, ctx.out_dir, ctx.model_dir, ctx.clock.run, ctx.rep0, aucs
    )


@dataclass
class _Context:
    config: Config
    store: ClipStore
    rows: pd.DataFrame
    out_dir: Path
    model_dir: Path | None
    clock: _Clock
    main: str = ""
    rep0: tuple[FeatureExtractor, HeadRun, float, Split] | None = None
    rep0_heads: dict[str, HeadRun] = field(default_factory=dict)


def run_experiment(
    config: Config,
    store: ClipStore,
    out_dir: Path,
    *,
    model_dir: Path | None = None,
    progress: StageCallback | None = None,
    data_digests: Mapping[str, str] | None = None,
) -> ExperimentResult:
    """Run the protocol of the module docstring on ``store``'s labelled clips; artefacts in ``out_dir``.

    ``data_digests`` (e.g. of the videos the clips were cut from) go into the report's environment.
    """
    exp = config.experiment
    revision = code_revision()  # of the code this run imported, before anything can change the checkout
    rows = load_labelled_clips(store)
    variants = make_variants(config)
    table2_repeats = exp.repeats if exp.table2_repeats is None else min(exp.table2_repeats, exp.repeats)
    plan = _plan(config, variants, table2_repeats)
    final = 3 if model_dir is not None and exp.final_model == "all" else 0
    clock = _Clock(_stage_count(config, plan) + final + frame_model_stages(config), progress)
    ctx = _Context(config, store, rows, Path(out_dir), model_dir, clock, main=variants[0].name)
    splits: list[Split] = clock.run(
        "split",
        f"split {len(rows)} clips by {exp.split_by} into {exp.repeats} repetitions",
        lambda: replicate(config, rows),
    )
    frame = load_frame_model_rows(config, ctx.out_dir / "cache", clock.run)  # None without frame_model
    repetitions = []
    for split, planned in zip(splits, plan, strict=True):
        rep = RepetitionResult(split.repeat, split.summary())
        write_split(split, ctx.out_dir / f"rep{split.repeat}" / "split.csv")
        for variant in planned:
            _run_variant(ctx, variant, split, rep, ctx.out_dir / f"rep{split.repeat}")
        if frame is not None:
            frame.run_repetition(
                config, store, split, ctx.out_dir / f"rep{split.repeat}" / "frame_model", clock.run
            )
        repetitions.append(rep)
    final_model = _write_final_model(ctx, repetitions)
    return ExperimentResult(
        config=config,
        variants=variants,
        repetitions=repetitions,
        n_clips=len(rows),
        n_videos=int(rows["video_id"].nunique()),
        frames_per_clip=(int(rows["n_frames"].min()), int(rows["n_frames"].max())),
        datasets=sorted(str(d) for d in rows["dataset"].unique()),
        out_dir=ctx.out_dir,
        model_dir=model_dir,
        timings=dict(clock.timings),
        table2_repeats=table2_repeats,
        environment=experiment_environment(config, store, data_digests, revision=revision),
        final_model=final_model,
        cpu_timings=dict(clock.cpu),
        rep0_model=ctx.rep0,
        frame_model=frame,
        rep0_heads=ctx.rep0_heads,
    )


def metric_values(
    result: ExperimentResult, variant: str, head: str, level: str, metric: str, repeats: int | None = None
) -> np.ndarray:
    """One metric of one (variant, head) over the (first ``repeats``) repetitions that computed it."""
    reps = result.repetitions[:repeats]
    return np.asarray([getattr(hr, level)[metric] for r in reps if (hr := r.get(variant, head))], dtype=float)
