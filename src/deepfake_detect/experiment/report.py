"""The experiment's report: report.json (every number), report.md (tables 1-3, figures, conclusions), PNGs.

Every sentence that states a finding is generated from the numbers in report.json; nothing is hard-coded.
Standard deviations are sample standard deviations (ddof = 1) over the repetitions, as n - 1 is the usual
choice for a handful of repeated splits; with one repetition they are not defined (shown as "n/a").
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepfake_detect.config import dump_config
from deepfake_detect.evaluation.plots import loss_curves, reliability_figure, roc_figure, score_histogram
from deepfake_detect.experiment.frame_model_text import frame_model_conclusions, frame_model_markdown
from deepfake_detect.experiment.report_text import conclusions, render_markdown
from deepfake_detect.experiment.runner import ExperimentResult, Variant, metric_values
from deepfake_detect.experiment.summary import stats
from deepfake_detect.infra.files import write_json
from deepfake_detect.models.calibration import at_bound
from deepfake_detect.models.heads import temporal_evidence

logger = logging.getLogger(__name__)

METRICS: list[tuple[str, str]] = [
    ("accuracy", "accuracy"),
    ("log_loss", "log loss"),
    ("log_loss_calibrated", "log loss after temperature scaling"),
    ("temperature", "temperature fitted on validation clips"),
    ("roc_auc", "ROC AUC"),
    ("average_precision", "AP"),
    ("eer", "EER"),
]
SINGLE_FRAME_KEYS = ("frame_auc", "spread_real", "spread_fake")


def temperature_stats(values: np.ndarray) -> dict[str, Any]:
    """stats() plus the median and how many fits hit the bound (the mean of T is dominated by a capped
    fit, e^7 ~ 1097, so the tables show the median)."""
    finite = values[np.isfinite(values)]
    return {
        **stats(values),
        "median": float(np.median(finite)) if finite.size else math.nan,
        "capped": sum(at_bound(float(v)) for v in finite),
    }


def _block(
    result: ExperimentResult, variant: str, head: str, level: str, repeats: int | None = None
) -> dict[str, Any]:
    return {
        m: (temperature_stats if m == "temperature" else stats)(
            metric_values(result, variant, head, level, m, repeats)
        )
        for m, _ in METRICS
    }


def _capped(temperature: float | None) -> bool | None:
    return None if temperature is None else at_bound(float(temperature))


def initialisation(variant: Variant) -> str:
    """How a Table 2 extractor got its weights, in words (SPEC §2 'Pretrained weights')."""
    ext = variant.extractor
    start = f"weights from {ext.weights.name}" if ext.weights else "random init (no pretrained weights given)"
    if variant.trained:
        return f"{start}, trained with the hinge loss ({ext.epochs} epochs)"
    return f"{start}, not trained"


def _single_frame(result: ExperimentResult, variant: str, head: str, key: str) -> np.ndarray:
    """A single-frame diagnostic of one (variant, head) over the repetitions."""
    values = [hr.single_frame.get(key, math.nan) for r in result.repetitions if (hr := r.get(variant, head))]
    return np.asarray(values, dtype=float)


def _dispersion(result: ExperimentResult, variant: str, repeats: int | None = None) -> np.ndarray:
    """The no-head dispersion AUC of one extractor variant over the (first ``repeats``) repetitions."""
    reps = result.repetitions[:repeats]
    values = [r.dispersion_auc[variant] for r in reps if variant in r.dispersion_auc]
    return np.asarray(values, dtype=float)


def _data_description(result: ExperimentResult) -> str:
    data = result.config.data
    if data.synth is not None:
        synth = data.synth
        return (
            f"the built-in synthetic benchmark, {synth.track} track ({synth.videos} videos of {synth.frames} "
            f"frames, {synth.width}x{synth.height}, fake jitter x{synth.jitter:g}"
            + (f"; {synth.replications} datasets, a seed each)" if synth.replications > 1 else ")")
        )
    where = f" from {data.root.name}" if data.root is not None else ""
    return f"dataset(s) {', '.join(result.datasets)}{where} ({data.layout} layout)"


def _comparison(result: ExperimentResult) -> dict[str, Any]:
    cfg = result.config
    main, head = result.variants[0].name, cfg.head.name
    base = metric_values(result, main, head, "clip", "roc_auc")
    out: dict[str, Any] = {"head": head, "against": {}, "dispersion_auc": stats(_dispersion(result, main))}
    for other in cfg.experiment.table3_heads:
        if other == head:
            continue
        diff = base - metric_values(result, main, other, "clip", "roc_auc")
        finite = diff[np.isfinite(diff)]
        out["against"][other] = {
            "auc_difference": stats(diff),
            "higher_in": int((finite > 0).sum()),
            "repetitions": int(finite.size),
        }
    return out


def _leakage(result: ExperimentResult) -> list[str]:
    exp = result.config.experiment
    selection = " and the choice of each head's best epoch" if result.config.head.keep == "best" else ""
    lines = [
        "Each repetition retrains every extractor and head it uses on that repetition's training clips; "
        f"the validation clips serve only the loss curves{selection}, and no test clip is seen by any "
        "trained part."
    ]
    shared = [rep.split["test_sources_in_train_or_val"] for rep in result.repetitions]
    if exp.split_by == "source":
        lines.append(
            "Splits are by source video: an original and every fake made from it stay on one side "
            f"(checked on every repetition; test sources also seen in training: {max(shared)})."
        )
    else:
        lines.append(
            "Splits are by clip (the paper's protocol): clips of one video, and fakes made from one "
            "original, can fall on both sides; test source videos that also had training clips, per "
            f"repetition: {shared}."
        )
    for v in result.variants:
        if v.extractor.weights is not None:
            lines.append(
                f"{v.name} starts from the weights file {v.extractor.weights.name}, trained outside this "
                "experiment: whether those weights saw these test videos cannot be checked here."
            )
    return lines


def _table2_rows(result: ExperimentResult) -> list[dict[str, Any]]:
    head, repeats = result.config.head.name, result.table2_repeats
    return [
        {
            "backbone": v.name,
            "hinge": v.trained,
            "initialisation": initialisation(v),
            "main": v.main,
            "clip": _block(result, v.name, head, "clip", repeats),
            "dispersion_auc": stats(_dispersion(result, v.name, repeats)),
        }
        for v in result.variants
        if v.main or v.name in result.config.experiment.table2_backbones
    ]


def _table3_rows(result: ExperimentResult) -> list[dict[str, Any]]:
    main, head = result.variants[0].name, result.config.head.name
    return [
        {
            "head": h,
            "evidence": temporal_evidence(h),
            "clip": _block(result, main, h, "clip"),
            "video": _block(result, main, h, "video"),
            "single_frame": {k: stats(_single_frame(result, main, h, k)) for k in SINGLE_FRAME_KEYS},
        }
        for h in [head, *[x for x in result.config.experiment.table3_heads if x != head]]
    ]


def _settings(result: ExperimentResult) -> dict[str, Any]:
    cfg, exp = result.config, result.config.experiment
    return {
        "clips": result.n_clips,
        "videos": result.n_videos,
        "split_by": exp.split_by,
        "repeats": exp.repeats,
        "test_clips": exp.test_clips,
        "val_clips": exp.val_clips,
        "seed": cfg.seed,
        "main_extractor": result.variants[0].name,
        "main_head": cfg.head.name,
        "frames_per_clip": list(result.frames_per_clip),
        "data": _data_description(result),
        "eps": cfg.evaluation.eps,
        "threshold": cfg.evaluation.threshold,
        "aggregation": cfg.evaluation.aggregation,
        "std": "sample standard deviation (ddof=1)",
        "replicate_by": exp.replicate_by,
        "independent_data": exp.replicate_by == "dataset",
    }


def build_report(result: ExperimentResult, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every number of the report as a JSON-ready mapping."""
    main, head = result.variants[0].name, result.config.head.name
    return {
        "settings": _settings(result),
        "splits": [rep.split for rep in result.repetitions],
        "table1": {
            "extractor": main,
            "head": head,
            "clip": _block(result, main, head, "clip"),
            "video": _block(result, main, head, "video"),
        },
        "table2": {"head": head, "repetitions": result.table2_repeats, "rows": _table2_rows(result)},
        "table3": {
            "extractor": main,
            "repetitions": result.config.experiment.repeats,
            "rows": _table3_rows(result),
        },
        "comparison": _comparison(result),
        "leakage": _leakage(result),
        "model": {
            "dir": str(result.model_dir) if result.model_dir else None,
            "trained_on": result.final_model.get("trained_on"),
            "temperature": result.final_model.get("temperature"),
            "temperature_capped": _capped(result.final_model.get("temperature")),
            "card": result.final_model.get("card"),
        },
        "timings_s": {k: round(v, 2) for k, v in result.timings.items()},
        "cpu_s": {k: round(v, 2) for k, v in result.cpu_timings.items()},
        "environment": result.environment,
        **({"frame_model": result.frame_model.report()} if result.frame_model is not None else {}),
        **(extra or {}),
    }


def _figures(result: ExperimentResult, out_dir: Path) -> dict[str, str]:
    cfg = result.config
    main, head = result.variants[0].name, cfg.head.name
    reps = result.repetitions
    figures: dict[str, str] = {}
    for v in result.variants:
        histories = {
            f"rep {r.repeat}": r.extractor_histories[v.name]
            for r in reps
            if v.name in r.extractor_histories and not r.extractor_histories[v.name].empty
        }
        if v.trained and histories:
            name = "fig4_extractor_loss.png" if v.main else f"fig4_extractor_loss_{v.name}.png"
            loss_curves(histories, out_dir / name, title=f"Figure 4: extractor {v.name}, hinge loss")
            figures[f"extractor loss ({v.name})"] = name
    detector = {f"rep {r.repeat}": hr.history for r in reps if (hr := r.get(main, head)) is not None}
    loss_curves(detector, out_dir / "fig5_detector_loss.png", title=f"Figure 5: detector {head}, BCE loss")
    figures[f"detector loss ({head})"] = "fig5_detector_loss.png"
    first = reps[0]
    curves3 = {h.head: _yp(h.predictions) for h in first.results if h.variant == main}
    roc_figure(curves3, out_dir / "roc_table3.png", title=f"Table 3 heads on {main}, repetition 0 test clips")
    figures["ROC, Table 3 heads (repetition 0)"] = "roc_table3.png"
    curves2 = {h.variant: _yp(h.predictions) for h in first.results if h.head == head}
    roc_figure(
        curves2, out_dir / "roc_table2.png", title=f"Table 2 extractors + {head}, repetition 0 test clips"
    )
    figures["ROC, Table 2 extractors (repetition 0)"] = "roc_table2.png"
    pooled = pd.concat([hr.predictions for r in reps if (hr := r.get(main, head)) is not None])
    score_histogram(
        *_yp(pooled),
        out_dir / "score_histogram.png",
        threshold=cfg.evaluation.threshold,
        title=f"{main} + {head}: test clips of all repetitions",
    )
    figures["score histogram (test clips, all repetitions)"] = "score_histogram.png"
    return {**figures, **_reliability(result, out_dir)}


def _reliability(result: ExperimentResult, out_dir: Path) -> dict[str, str]:
    """One reliability diagram per Table 3 head: test clips of all repetitions, before and after scaling."""
    main, figures = result.variants[0].name, {}
    for head in [r["head"] for r in _table3_rows(result)]:
        tables = [hr.predictions for r in result.repetitions if (hr := r.get(main, head)) is not None]
        if not tables:
            continue
        pooled = pd.concat(tables)
        y = pooled["label"].to_numpy(int)
        curves = {
            "as trained": (y, pooled["fake_probability"].to_numpy(float)),
            "temperature-scaled": (y, pooled["calibrated_probability"].to_numpy(float)),
        }
        name = f"reliability_{re.sub(r'[^A-Za-z0-9._-]', '_', head)}.png"
        reliability_figure(curves, out_dir / name, title=f"{main} + {head}: test clips, all repetitions")
        figures[f"reliability ({head})"] = name
    return figures


def _yp(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return table["label"].to_numpy(int), table["fake_probability"].to_numpy(float)


def write_report(
    result: ExperimentResult, out_dir: Path, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write report.json, report.md, config.yaml and the figures into ``out_dir``; returns the payload."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = build_report(result, extra)
    payload["conclusions"] = conclusions(payload) + frame_model_conclusions(payload)
    payload["figures"] = _figures(result, out_dir)
    write_json(out_dir / "report.json", payload, verbatim_lists=True)
    (out_dir / "config.yaml").write_text(dump_config(result.config), encoding="utf-8")
    markdown = render_markdown(payload, before_conclusions=frame_model_markdown(payload))
    (out_dir / "report.md").write_text(markdown, encoding="utf-8")
    logger.info("report written to %s", out_dir / "report.md")
    return payload
