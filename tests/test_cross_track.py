"""Cross-track table: the bootstrap interval, the generated sentences, and the table on a tiny config."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from deepfake_detect.config import config_from_dict
from deepfake_detect.experiment.cross_track import (
    CROSS_SEED_OFFSET,
    bootstrap_auc_interval,
    cross_track_seed,
)
from deepfake_detect.experiment.report_text import chance_verdict, cross_track_sentences, render_markdown


def test_bootstrap_interval_brackets_the_auc_and_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(20), 4)
    labels = np.tile([0, 0, 1, 1], 20)
    probabilities = np.clip(0.5 + 0.2 * (labels - 0.5) + rng.normal(0, 0.2, labels.size), 0, 1)
    low, high = bootstrap_auc_interval(labels, probabilities, groups)
    from sklearn.metrics import roc_auc_score

    assert low < roc_auc_score(labels, probabilities) < high
    assert 0 < high - low < 0.5
    assert (low, high) == bootstrap_auc_interval(labels, probabilities, groups)
    # a perfect ranking stays perfect in every resample; one group gives no interval
    assert bootstrap_auc_interval(labels, labels.astype(float), groups) == (1.0, 1.0)
    assert all(np.isnan(bootstrap_auc_interval(labels, probabilities, np.zeros(labels.size))))


def test_cross_track_seed_never_meets_a_training_seed() -> None:
    for seed, synth_seed, replications in ((0, None, 1), (3, None, 8), (0, 5, 1_000_001)):
        cfg = config_from_dict(
            {"seed": seed, "data": {"synth": {"seed": synth_seed, "replications": replications}}}
        )
        base = seed if synth_seed is None else synth_seed
        assert cross_track_seed(cfg) not in range(base, base + replications)
    assert cross_track_seed(config_from_dict({"data": {"synth": {}}})) == 1 + CROSS_SEED_OFFSET


def _cell(auc: float, low: float, high: float) -> dict[str, Any]:
    return {"roc_auc": auc, "ci95": [low, high]}


def _table(main: tuple[float, float, float], other: tuple[float, float, float]) -> dict[str, Any]:
    def row(train: str, test: str, lstm: dict[str, Any]) -> dict[str, Any]:
        return {
            "train_track": train,
            "test_track": test,
            "test_set": "x",
            "clips": 40,
            "videos": 10,
            "sources": 5,
            "heads": {"lstm": lstm, "mlp": _cell(*other)},
            "predictions": f"{train}_on_{test}.csv",
        }

    return {
        "track": "temporal",
        "other_track": "spatial",
        "seed": 1_000_001,
        "videos": 64,
        "heads": ["lstm", "mlp"],
        "main_head": "lstm",
        "reverse": False,
        "rows": [
            row("temporal", "temporal", _cell(0.9, 0.8, 0.97)),
            row("temporal", "spatial", _cell(*main)),
        ],
    }


@pytest.mark.parametrize(
    ("cell", "verdict"),
    [
        ((0.7, 0.6, 0.8), "above chance"),
        ((0.3, 0.2, 0.4), "below chance"),
        ((0.55, 0.45, 0.65), "not distinguishable from chance"),
        ((0.5, 0.5, 0.5), "not distinguishable from chance"),  # an interval touching 0.5 does not exclude it
        ((float("nan"), float("nan"), float("nan")), "not defined"),
        ((0.75, float("nan"), float("nan")), "no interval"),
    ],
)
def test_chance_verdict_follows_the_interval(cell: tuple[float, float, float], verdict: str) -> None:
    assert chance_verdict(_cell(*cell)).startswith(verdict)


def test_cross_track_sentences_each_branch() -> None:
    assert cross_track_sentences(None) == [] and cross_track_sentences({}) == []
    above = cross_track_sentences(_table((0.7, 0.6, 0.8), (0.45, 0.3, 0.6)))
    assert len(above) == 1  # the in-track row gets no sentence
    text = above[0]
    assert "tested on the spatial one" in text and "`lstm` scores clip ROC AUC 0.700 [0.600, 0.800]" in text
    assert "`lstm` scores clip ROC AUC 0.700 [0.600, 0.800]: above chance" in text
    assert "`mlp` 0.450 [0.300, 0.600]: not distinguishable from chance" in text
    assert "On its own track the same `lstm` scored 0.900 [0.800, 0.970]" in text
    below = cross_track_sentences(_table((0.3, 0.2, 0.4), (0.7, 0.6, 0.8)))[0]
    assert "`lstm` scores clip ROC AUC 0.300 [0.200, 0.400]: below chance" in below
    assert "`mlp` 0.700 [0.600, 0.800]: above chance" in below
    assert "above chance" not in below.split("Other heads")[0]


def test_cross_track_section_in_report_markdown() -> None:
    from test_report_text import _minimal_report, _payload

    payload = _minimal_report(_payload([0.9] * 2, [0.6] * 2, [0.5] * 2, [0.5] * 2))
    assert "across tracks" not in render_markdown(payload)
    payload["cross_track"] = _table((0.55, 0.45, 0.65), (0.5, 0.4, 0.6))
    md = render_markdown(payload)
    assert "## Robustness: across tracks" in md
    assert "| temporal -> spatial | x | 40 (10) | 0.550 [0.450, 0.650] | 0.500 [0.400, 0.600] |" in md


@pytest.mark.slow
def test_cross_track_table_both_directions_and_sklearn_auc(tmp_path: Path) -> None:
    from sklearn.metrics import roc_auc_score

    from deepfake_detect.data.store import ClipStore
    from deepfake_detect.experiment.cross_track import cross_track_table
    from deepfake_detect.experiment.prepare import make_synth
    from deepfake_detect.experiment.runner import load_labelled_clips
    from deepfake_detect.models import FeatureExtractor, create_head
    from deepfake_detect.preprocess import preprocess_dataset

    config = config_from_dict(
        {
            "seed": 0,
            "data": {"synth": {"videos": 8, "frames": 20, "width": 256, "height": 192, "track": "temporal"}},
            "faces": {"crop_size": 64},
            "clips": {"clip_len": 8, "min_clip_len": 8},
            "preprocess": {"workers": 1},
            "extractor": {
                "backbone": "cnn4",
                "embed_dim": 16,
                "input_size": 32,
                "epochs": 1,
                "batch_size": 8,
                "extractor_clip_len": 4,
            },
            "head": {"name": "lstm", "options": {"hidden": 8, "layers": 1}, "epochs": 1, "batch_size": 8},
            "experiment": {"test_clips": 4, "val_clips": 0, "split_by": "source"},
        }
    )
    records = make_synth(config, tmp_path / "synth")
    store = ClipStore(tmp_path / "clips")
    preprocess_dataset(records, store.root, config, workers=1)
    rows = load_labelled_clips(store)
    extractor = FeatureExtractor("cnn4", 16, input_size=32).eval()
    heads = {
        name: SimpleNamespace(head=create_head(name, input_dim=16, hidden=8, layers=1).eval())
        for name in ("lstm", "mlp")
    }
    table = cross_track_table(
        config,
        store,
        rows,
        extractor,
        heads,  # type: ignore[arg-type]
        tmp_path / "cross",
        cache=tmp_path / "cache",
    )
    pairs = [(r["train_track"], r["test_track"]) for r in table["rows"]]
    assert pairs == [
        ("temporal", "temporal"),
        ("temporal", "spatial"),
        ("spatial", "spatial"),
        ("spatial", "temporal"),
    ]
    assert table["seed"] == cross_track_seed(config) != 0
    other_videos = {r.video_id for r in make_synth_records(tmp_path / "cross" / "spatial" / "synth")}
    assert len(other_videos) == 8
    for row in table["rows"]:
        scored = pd.read_csv(tmp_path / "cross" / row["predictions"])
        assert len(scored) == row["clips"] > 0 and scored["label"].nunique() == 2
        for head in ("lstm", "mlp"):
            expected = roc_auc_score(scored["label"], scored[head])
            assert row["heads"][head]["roc_auc"] == pytest.approx(expected, abs=1e-9)
    assert table["rows"][0]["clips"] == table["rows"][3]["clips"] == len(rows)  # this track's test clips
    assert table["rows"][2]["clips"] < table["rows"][1]["clips"]  # held-out part of the other track's set
    assert (tmp_path / "cross" / "spatial" / "model" / "mlp").is_dir()
    sentences = cross_track_sentences(table)
    assert len(sentences) == 2 and "tested on the spatial one" in sentences[0]


def make_synth_records(folder: Path) -> list[Any]:
    from deepfake_detect.data.layouts import load_dataset

    return load_dataset("dfdc", folder).records
