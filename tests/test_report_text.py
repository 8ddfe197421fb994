"""The report's generated sentences against hand-made tables: each branch fires where it must, and no
sentence contradicts the numbers it quotes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats as scipy_stats

from deepfake_detect.experiment.report import stats
from deepfake_detect.experiment.report_text import conclusions, near_chance, render_markdown


def _stat(values: list[float]) -> dict[str, Any]:
    return stats(np.asarray(values, dtype=float))


HEADS = (("lstm", "order"), ("mlp", "pooled"), ("frame-mlp", "none"))


def _payload(
    lstm: list[float],
    mlp: list[float],
    frame: list[float],
    frame_single: list[float],
    heads: tuple[tuple[str, str], ...] = HEADS,
    dispersion: float = 0.6,
) -> dict[str, Any]:
    """A payload as report.build_report writes it, for three heads named and typed by ``heads``."""
    rows = []
    for (name, evidence), aucs, single in zip(
        heads, (lstm, mlp, frame), ([0.5] * len(lstm), [0.5] * len(mlp), frame_single), strict=True
    ):
        rows.append(
            {
                "head": name,
                "evidence": evidence,
                "clip": {"roc_auc": _stat(aucs)},
                "single_frame": {
                    "frame_auc": _stat(single),
                    "spread_real": _stat([0.2] * len(aucs)),
                    "spread_fake": _stat([0.1] * len(aucs)),
                },
            }
        )
    against = {}
    for (name, _), aucs in zip(heads[1:], (mlp, frame), strict=True):
        diff = np.asarray(lstm) - np.asarray(aucs)
        against[name] = {
            "auc_difference": _stat(list(diff)),
            "higher_in": int((diff > 0).sum()),
            "repetitions": len(diff),
        }
    return {
        "comparison": {
            "head": heads[0][0],
            "against": against,
            "dispersion_auc": _stat([dispersion] * len(lstm)),
        },
        "table3": {"extractor": "cnn4", "rows": rows},
        "splits": [{"n_train": 100, "n_test_sources": 10}],
    }


def test_interval_is_students_t_as_scipy_computes_it() -> None:
    values = [0.9, 0.85, 0.95, 0.7, 0.88, 0.91]
    s = _stat(values)
    low, high = scipy_stats.t.interval(
        0.95, len(values) - 1, loc=np.mean(values), scale=scipy_stats.sem(values)
    )
    assert s["ci95"] == pytest.approx([low, high], abs=1e-12)
    assert all(math.isnan(v) for v in _stat([0.7])["ci95"])


def test_comparison_branches() -> None:
    chance = [0.5, 0.52, 0.48]
    clear = conclusions(_payload([0.9, 0.85, 0.95], [0.6, 0.55, 0.6], [0.52, 0.48, 0.5], chance))
    assert clear[0].startswith("`lstm` clearly beats `mlp`") and "0.317" in clear[0]
    assert "higher in 3 of 3" in clear[0] and "95% interval [" in clear[0] and "not independent" in clear[0]
    # consistent but small: decided, not "clearly"
    small = conclusions(_payload([0.8, 0.81, 0.82, 0.8], [0.7, 0.72, 0.71, 0.7], [0.5] * 4, [0.5] * 4))
    assert small[0].startswith("`lstm` beats `mlp`")
    mixed = conclusions(_payload([0.7, 0.6, 0.9], [0.65, 0.7, 0.6], [0.75, 0.7, 0.8], chance))
    assert mixed[0].startswith("Undecided: `lstm` leads on average over `mlp`") and "includes 0" in mixed[0]
    assert "higher in 2 of 3" in mixed[0] and "less than two standard errors" in mixed[0]
    worse = conclusions(_payload([0.6, 0.62, 0.61], [0.8, 0.82, 0.83], [0.5] * 3, chance))
    assert worse[0].startswith("`mlp` beats `lstm`")
    one = conclusions(_payload([0.9], [0.6], [0.5], [0.5]))
    assert one[0].startswith("Undecided") and "with one repetition there is no interval" in one[0]
    undefined = conclusions(_payload([math.nan, math.nan], [0.6, 0.5], [0.5, 0.5], [0.5, 0.5]))
    assert "not defined" in undefined[0]


def test_frame_only_branches() -> None:
    lstm, mlp = [0.9] * 6, [0.6] * 6
    # The numbers: 0.608 ± 0.086 on clips and 0.591 ± 0.076 on frames alone, 6 repetitions.
    clip = list(0.608 + 0.086 * np.array([1, -1, 1, -1, 1, -1]) * math.sqrt(5 / 6))
    single = list(0.591 + 0.076 * np.array([1, -1, 1, -1, 1, -1]) * math.sqrt(5 / 6))
    leak = conclusions(_payload(lstm, mlp, clip, single))[2]
    assert "0.591 ± 0.076" in leak and "more than two standard errors from 0.5" in leak
    assert "single frames carry label information" in leak and "do not give the label away" not in leak
    both = conclusions(_payload(lstm[:3], mlp[:3], [0.52, 0.48, 0.5], [0.51, 0.49, 0.5]))[2]
    assert "both near chance, so single frames do not give the label away" in both
    averaging = conclusions(_payload(lstm[:3], mlp[:3], [0.75, 0.7, 0.8], [0.52, 0.49, 0.5]))[2]
    assert "not distinguishable from chance" in averaging and "averaging frame scores" in averaging
    assert "0.200" in averaging  # real clips spread more than fake ones
    unmeasured = conclusions(_payload(lstm[:2], mlp[:2], [0.8, 0.85], [math.nan, math.nan]))[2]
    assert "above chance" in unmeasured and "not judged" in unmeasured


def test_sentences_follow_head_properties_not_names() -> None:
    renamed = (("seq", "order"), ("avg", "pooled"), ("per-frame", "none"))
    out = conclusions(_payload([0.9] * 3, [0.6] * 3, [0.5] * 3, [0.5] * 3, heads=renamed, dispersion=0.9))
    assert any(s.startswith("`per-frame` (no relation between frames)") for s in out)
    assert any("`avg` trails `seq` by 0.300" in s for s in out)
    # A head named frame-mlp that does not declare itself frame-only gets no frame-only sentence.
    untyped = (("lstm", "order"), ("mlp", "pooled"), ("frame-mlp", "unknown"))
    out = conclusions(_payload([0.9] * 3, [0.6] * 3, [0.5] * 3, [0.5] * 3, heads=untyped))
    assert not any("no relation between frames" in s for s in out)


def test_near_chance_is_two_standard_errors_or_the_margin_without_them() -> None:
    assert not near_chance(_stat([0.56, 0.58, 0.57, 0.59]))  # 0.075 from 0.5, standard error 0.006
    assert near_chance(_stat([0.3, 0.9, 0.5]))  # far from 0.5 on average, but within its noise
    assert near_chance(_stat([0.55])) and not near_chance(_stat([0.65]))


@pytest.mark.parametrize("seed", range(40))
def test_no_sentence_contradicts_its_numbers(seed: int) -> None:
    """Random tables: 'beats' only where the interval excludes 0, 'do not give the label away' only where
    single frames are within two standard errors of chance."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 8))
    draw = [
        list(np.clip(rng.normal(rng.uniform(0.4, 0.95), rng.uniform(0.01, 0.15), n), 0, 1)) for _ in range(4)
    ]
    payload = _payload(*draw)
    out = conclusions(payload)
    for sentence, (other, c) in zip(out, payload["comparison"]["against"].items(), strict=False):
        low, high = c["auc_difference"]["ci95"]
        decided = sentence.startswith(("`lstm` beats", "`lstm` clearly beats", f"`{other}` beats"))
        assert decided == (low > 0 or high < 0), sentence
    single = payload["table3"]["rows"][2]["single_frame"]["frame_auc"]
    se = single["std"] / math.sqrt(single["n"])
    frame = next(s for s in out if "no relation between frames" in s)
    if abs(single["mean"] - 0.5) > 2 * se:
        assert "do not give the label away" not in frame and "not distinguishable" not in frame
        assert "carry label information" in frame


def test_markdown_has_the_environment_table() -> None:
    payload = _payload([0.9] * 2, [0.6] * 2, [0.5] * 2, [0.5] * 2)
    env = {
        "code_revision": "git abc123",
        "python": "3.11.9",
        "packages": {"torch": "2.14.1"},
        "cpu": {"model": "Some CPU", "cores": 2, "flags": {"avx2": True, "avx512_bf16": False}},
        "torch": {
            "threads": 2,
            "interop_threads": 2,
            "cpu_capability": "AVX2",
            "mkldnn_bf16": False,
            "env": {},
        },
        "precision": {"extractor training": "32"},
        "digests": {"clip crops": "sha256:00 (3 files)"},
    }
    text = render_markdown({**_minimal_report(payload), "environment": env})
    assert "| code revision | git abc123 |" in text and "avx512_bf16 no" in text
    assert (
        "| precision | extractor training 32 |" in text
        and "| digest: clip crops | sha256:00 (3 files) |" in text
    )


def _minimal_report(payload: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "accuracy",
        "log_loss",
        "log_loss_calibrated",
        "temperature",
        "roc_auc",
        "average_precision",
        "eer",
    )
    block = {k: _stat([0.5, 0.6]) for k in keys}
    rows = [{**r, "clip": block, "video": block} for r in payload["table3"]["rows"]]
    return {
        **payload,
        "settings": {
            "data": "toy",
            "clips": 4,
            "videos": 2,
            "frames_per_clip": [8, 8],
            "repeats": 2,
            "test_clips": 2,
            "val_clips": 0,
            "split_by": "source",
            "seed": 0,
            "main_extractor": "cnn4",
            "main_head": "lstm",
            "threshold": 0.5,
            "eps": 1e-15,
            "aggregation": "mean",
            "std": "sample",
        },
        "splits": [],
        "leakage": [],
        "table1": {"extractor": "cnn4", "head": "lstm", "clip": block, "video": block},
        "table2": {"head": "lstm", "repetitions": 1, "rows": []},
        "table3": {"extractor": "cnn4", "repetitions": 2, "rows": rows},
        "conclusions": ["x"],
        "model": {},
        "timings_s": {},
    }


def test_decided_sentences_say_whether_repetitions_are_independent() -> None:
    payload = _payload([0.9, 0.85, 0.95], [0.6, 0.55, 0.6], [0.5] * 3, [0.5] * 3)
    assert "not independent replications" in conclusions(payload)[0]
    payload["settings"] = {"independent_data": True}
    first = conclusions(payload)[0]
    assert (
        "generated its own videos, so the repetitions are independent" in first and "not indep" not in first
    )
