"""Splits, evaluation outputs and the whole experiment protocol on a tiny real clip store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn import metrics as skm

from deepfake_detect.config import config_from_dict
from deepfake_detect.data.store import ClipStore, clip_row
from deepfake_detect.evaluation.evaluate import (
    EvaluationError,
    clip_predictions,
    evaluate_predictions,
    load_predictions,
    video_predictions,
)
from deepfake_detect.experiment.splits import (
    LeakageError,
    Split,
    SplitError,
    check_no_leakage,
    group_ids,
    make_splits,
    split_once,
)
from deepfake_detect.types import Label, VideoRecord

# --- manifests --------------------------------------------------------------------------------------------


def random_manifest(rng: np.random.Generator, sources: int) -> pd.DataFrame:
    """Sources with one real and 0-3 fakes each; 1-4 clips per video; some reals without a source_id."""
    rows = []
    for s in range(sources):
        videos = [(f"s{s}_real", 0)] + [(f"s{s}_fake{k}", 1) for k in range(int(rng.integers(0, 4)))]
        for video_id, label in videos:
            source = "" if (label == 0 and rng.random() < 0.2) else f"s{s}_real"
            for c in range(int(rng.integers(1, 5))):
                rows.append(
                    {
                        "clip_key": f"{video_id}/t0/c{c}",
                        "video_id": video_id,
                        "source_id": source,
                        "label": label,
                        "track": 0,
                        "clip_index": c,
                    }
                )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", range(25))
def test_source_split_never_puts_a_source_on_two_sides(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = random_manifest(rng, sources=int(rng.integers(8, 30)))
    test_clips = int(rng.integers(1, max(2, len(rows) // 4)))
    val_clips = int(rng.integers(0, max(1, len(rows) // 4)))
    split = split_once(rows, test_clips=test_clips, val_clips=val_clips, split_by="source", seed=seed)
    groups = {side: set(group_ids(frame)) for side, frame in split.sides().items()}
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    assert not groups["train"] & groups["val"]
    keys = [k for frame in split.sides().values() for k in frame["clip_key"]]
    assert sorted(keys) == sorted(rows["clip_key"])  # a partition: every clip exactly once
    biggest = int(group_ids(rows).value_counts().max())
    assert 1 <= len(split.test) <= max(test_clips, biggest)
    assert len(split.val) <= max(val_clips, biggest)


def test_clip_split_reproduces_the_paper_protocol() -> None:
    """5908 clips -> 100 test, 308 validation, 5500 training, drawn at random (paper §3)."""
    rng = np.random.default_rng(1)
    videos = rng.integers(0, 1500, size=5908)
    rows = pd.DataFrame(
        {
            "clip_key": [f"c{i}" for i in range(5908)],
            "video_id": [f"v{v}" for v in videos],
            "source_id": [f"v{v}" for v in videos],
            "label": (videos % 2).astype(int),
        }
    )
    split = split_once(rows, test_clips=100, val_clips=308, split_by="clip", seed=0)
    assert (len(split.train), len(split.val), len(split.test)) == (5500, 308, 100)
    assert (
        split.test["clip_key"].tolist() != rows["clip_key"].head(100).tolist()
    )  # random, not the first ones
    # the paper's protocol does not group: some test videos also have training clips
    assert set(split.test["video_id"]) & set(split.train["video_id"])
    assert split.summary()["test_sources_in_train_or_val"] > 0


def test_repeated_splits_differ_and_are_deterministic() -> None:
    rows = random_manifest(np.random.default_rng(3), sources=40)
    kwargs = {"repeats": 4, "test_clips": 20, "val_clips": 10}
    for split_by in ("source", "clip"):
        first = make_splits(rows, split_by=split_by, seed=7, **kwargs)
        again = make_splits(rows, split_by=split_by, seed=7, **kwargs)
        other = make_splits(rows, split_by=split_by, seed=8, **kwargs)
        tests = [tuple(sorted(s.test["clip_key"])) for s in first]
        assert tests == [tuple(sorted(s.test["clip_key"])) for s in again]
        assert len(set(tests)) == len(tests)  # every repetition draws another test set
        assert tests != [tuple(sorted(s.test["clip_key"])) for s in other]
        assert all(s.test["label"].nunique() == 2 for s in first)


def test_split_errors_and_leak_detection() -> None:
    rows = random_manifest(np.random.default_rng(0), sources=3)
    with pytest.raises(SplitError, match=r"lower experiment\.test_clips"):
        split_once(rows, test_clips=len(rows), val_clips=1, split_by="clip", seed=0)
    with pytest.raises(SplitError, match="lack column"):
        split_once(rows.drop(columns="label"), test_clips=1, val_clips=0, split_by="clip", seed=0)
    leaky = Split(0, 0, "source", rows.iloc[1:], rows.iloc[:0], rows.iloc[:1])
    with pytest.raises(LeakageError):
        check_no_leakage(leaky)


# --- evaluation --------------------------------------------------------------------------------


def _predictions(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(12):
        label = v % 2
        for c in range(int(rng.integers(1, 4))):
            rows.append(
                {
                    "clip_key": f"v{v}/t0/c{c}",
                    "video_id": f"v{v}",
                    "source_id": f"v{v - label}",
                    "track": c % 2,
                    "clip_index": c,
                    "label": label,
                }
            )
    rows_frame = pd.DataFrame(rows)
    probs = np.clip(0.35 * rows_frame["label"] + rng.uniform(0, 0.65, len(rows_frame)), 0, 1)
    probs[0] = 0.0  # exercises the eps clipping of the log loss
    return clip_predictions(rows_frame, probs)


def test_evaluate_writes_outputs_matching_sklearn(tmp_path: Path) -> None:
    table = _predictions()
    result = evaluate_predictions(table, tmp_path, eps=1e-7, threshold=0.5, aggregation="mean")
    for name in (
        "metrics.json",
        "predictions.csv",
        "video_predictions.csv",
        "roc.png",
        "score_histogram.png",
    ):
        assert (tmp_path / name).is_file(), name
    for png in ("roc.png", "score_histogram.png"):
        with Image.open(tmp_path / png) as image:
            assert image.format == "PNG" and min(image.size) > 200
    saved = json.loads((tmp_path / "metrics.json").read_text())
    reread = load_predictions(tmp_path / "predictions.csv")
    y, p = reread["label"].to_numpy(), reread["fake_probability"].to_numpy()
    clip = saved["clip"]
    assert clip["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert clip["average_precision"] == pytest.approx(skm.average_precision_score(y, p))
    assert clip["log_loss"] == pytest.approx(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)))
    assert clip["accuracy"] == pytest.approx(skm.accuracy_score(y, p >= 0.5))
    assert clip["n"] == len(table) and clip == result.clip
    # video level: the mean of each video's clip probabilities
    means = reread.groupby("video_id").agg(label=("label", "first"), p=("fake_probability", "mean"))
    assert saved["video"]["roc_auc"] == pytest.approx(skm.roc_auc_score(means["label"], means["p"]))
    assert saved["video"]["n"] == 12


def test_video_aggregation_rules_use_tracks() -> None:
    table = pd.DataFrame(
        {
            "video_id": ["a"] * 4,
            "label": [1] * 4,
            "track": [0, 0, 1, 1],
            "fake_probability": [0.1, 0.3, 0.8, 0.9],
        }
    )
    assert video_predictions(table, "mean")["fake_probability"].item() == pytest.approx(0.525)
    assert video_predictions(table, "max")["fake_probability"].item() == pytest.approx(0.85)


def test_evaluate_rejects_bad_predictions(tmp_path: Path) -> None:
    table = _predictions()
    with pytest.raises(EvaluationError, match="lack column"):
        evaluate_predictions(table.drop(columns="label"), tmp_path)
    bad = table.copy()
    bad.loc[0, "fake_probability"] = 1.5
    with pytest.raises(EvaluationError, match="within"):
        evaluate_predictions(bad, tmp_path)
    counts = table["video_id"].value_counts()
    first_clip = table.index[table["video_id"] == counts[counts > 1].index[0]][0]
    mixed = table.copy()
    mixed.loc[first_clip, "label"] = 1 - mixed.loc[first_clip, "label"]
    with pytest.raises(EvaluationError, match="different labels"):
        evaluate_predictions(mixed, tmp_path)
    with pytest.raises(EvaluationError, match="not found"):
        load_predictions(tmp_path / "missing.csv")


# --- the whole protocol on a tiny real clip store --------------------------------------------------


def make_clip_store(
    root: Path,
    face: np.ndarray,
    *,
    sources: int = 6,
    clips: int = 2,
    frames: int = 6,
    size: int = 32,
    seed: int = 0,
    dataset: str = "toy",
) -> ClipStore:
    """A clip store of astronaut face crops: reals hold still, fakes jitter and flicker frame to frame."""
    rng = np.random.default_rng(seed)
    base = face[20:260, 130:370].astype(np.float32)  # (240, 240, 3) around the face
    store = ClipStore(root)
    for s in range(sources):
        gain = rng.uniform(0.7, 1.2, size=3)
        for label in (Label.REAL, Label.FAKE):
            video_id = f"{dataset}{s:02d}{'f' if label else 'r'}"
            record = VideoRecord(video_id, root / f"{video_id}.mp4", label, f"{dataset}src{s:02d}", dataset)
            work = store.work_dir(video_id)
            (work / "t0").mkdir(parents=True)
            for t in range(clips * frames):
                shift = rng.integers(-12, 13, size=2) if label else (0, 0)
                flicker = rng.uniform(0.9, 1.1, size=3) if label else 1.0
                image = np.roll(base, tuple(shift), axis=(0, 1)) * gain * flicker
                image = np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
                Image.fromarray(image).resize((size, size)).save(work / "t0" / f"{t:06d}.jpg", quality=95)
            rows = [
                clip_row(
                    record,
                    0,
                    c,
                    list(range(c * frames, (c + 1) * frames)),
                    [i / 25 for i in range(c * frames, (c + 1) * frames)],
                )
                for c in range(clips)
            ]
            store.write_video_rows(video_id, rows, work)
    store.consolidate()
    return store


TINY = {
    "extractor": {
        "backbone": "cnn4",
        "input_size": 32,
        "embed_dim": 16,
        "epochs": 2,
        "batch_size": 4,
        "extractor_clip_len": 4,
    },
    "head": {"options": {"hidden": 16, "layers": 1}, "epochs": 2, "batch_size": 8},
    "experiment": {
        "repeats": 2,
        "test_clips": 4,
        "val_clips": 4,
        "table2_backbones": ["timm:resnet10t", "cnn4"],
        "table2_overrides": {"timm:resnet10t": {"hinge": False}},
    },
}


@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory: pytest.TempPathFactory, astronaut_rgb: np.ndarray) -> Path:
    from deepfake_detect.experiment.report import write_report
    from deepfake_detect.experiment.runner import run_experiment

    root = tmp_path_factory.mktemp("experiment")
    store = make_clip_store(root / "clips", astronaut_rgb)
    stages: list[tuple[str, int, int]] = []
    result = run_experiment(
        config_from_dict(TINY),
        store,
        root / "report",
        model_dir=root / "model",
        progress=lambda *a: stages.append(a),
    )
    write_report(result, root / "report")
    assert stages[-1][1] == stages[-1][2] - 1 and len(stages) == stages[-1][2]  # one call per stage
    return root


def test_experiment_report_has_three_tables_with_numbers(tiny_experiment: Path) -> None:
    report = json.loads((tiny_experiment / "report" / "report.json").read_text())
    t1 = report["table1"]["clip"]
    assert len(t1["accuracy"]["values"]) == 2 and np.isfinite(t1["log_loss"]["mean"])
    assert t1["log_loss"]["std"] is not None
    rows2 = {row["backbone"]: row for row in report["table2"]["rows"]}
    assert set(rows2) == {"cnn4", "timm:resnet10t"}
    untrained = rows2["timm:resnet10t"]
    assert untrained["hinge"] is False and "random init" in untrained["initialisation"]
    assert rows2["cnn4"]["hinge"] is True
    assert [row["head"] for row in report["table3"]["rows"]] == ["lstm", "mlp", "frame-mlp"]
    for row in report["table3"]["rows"]:
        assert np.isfinite(row["clip"]["log_loss"]["mean"]) and 0 <= row["clip"]["accuracy"]["mean"] <= 1
        assert len(row["single_frame"]["frame_auc"]["values"]) == 2
    assert len(report["comparison"]["dispersion_auc"]["values"]) == 2
    markdown = (tiny_experiment / "report" / "report.md").read_text()
    for title in ("## Table 1", "## Table 2", "## Table 3", "split by source", "not trained"):
        assert title in markdown
    for name in report["figures"].values():
        assert (tiny_experiment / "report" / name).is_file()


def test_experiment_tables_match_the_per_repetition_evaluations(tiny_experiment: Path) -> None:
    report = json.loads((tiny_experiment / "report" / "report.json").read_text())
    losses, aucs_mlp = [], []
    for r in range(2):
        evaluation = tiny_experiment / "report" / f"rep{r}" / "cnn4" / "lstm" / "evaluation"
        preds = pd.read_csv(evaluation / "predictions.csv")
        y, p = preds["label"], np.clip(preds["fake_probability"], 1e-15, 1 - 1e-15)
        losses.append(skm.log_loss(y, p, labels=[0, 1]))
        mlp = pd.read_csv(
            tiny_experiment / "report" / f"rep{r}" / "cnn4" / "mlp" / "evaluation" / "predictions.csv"
        )
        aucs_mlp.append(skm.roc_auc_score(mlp["label"], mlp["fake_probability"]))
    assert report["table1"]["clip"]["log_loss"]["values"] == pytest.approx(losses)
    assert report["table1"]["clip"]["log_loss"]["std"] == pytest.approx(np.std(losses, ddof=1))
    mlp_row = next(row for row in report["table3"]["rows"] if row["head"] == "mlp")
    assert mlp_row["clip"]["roc_auc"]["mean"] == pytest.approx(np.mean(aucs_mlp))
    difference = report["comparison"]["against"]["mlp"]["auc_difference"]["mean"]
    assert any(f"{difference:.3f}" in sentence for sentence in report["conclusions"])


def test_experiment_never_tests_on_training_clips(tiny_experiment: Path) -> None:
    for r in range(2):
        split = pd.read_csv(tiny_experiment / "report" / f"rep{r}" / "split.csv")
        sides = {side: set(frame["clip_key"]) for side, frame in split.groupby("side")}
        sources = {side: set(frame["source_id"]) for side, frame in split.groupby("side")}
        assert not sides["test"] & (sides["train"] | sides["val"])
        assert not sources["test"] & (sources["train"] | sources["val"])
        preds = pd.read_csv(
            tiny_experiment / "report" / f"rep{r}" / "cnn4" / "lstm" / "evaluation" / "predictions.csv"
        )
        assert set(preds["clip_key"]) == sides["test"]


def test_experiment_writes_a_loadable_final_model(tiny_experiment: Path) -> None:
    from deepfake_detect.models import load_model_dir

    loaded = load_model_dir(tiny_experiment / "model")
    assert loaded.config.backbone == "cnn4" and loaded.config.head == "lstm"
    assert "all 24 labelled clips" in loaded.config.extra["trained_on"]


# --- command line ----------------------------------------------------------------------------


def _cli(args: list[str]) -> object:
    from typer.testing import CliRunner

    from deepfake_detect.cli.app import _load_commands, app

    _load_commands()
    return CliRunner().invoke(app, args)


def test_evaluate_command_on_a_predictions_table(tmp_path: Path) -> None:
    table = _predictions(seed=4)
    table.to_csv(tmp_path / "preds.csv", index=False)
    result = _cli(
        ["evaluate", str(tmp_path / "preds.csv"), "--out", str(tmp_path / "ev"), "--aggregation", "max"]
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["aggregation"] == "max"
    assert saved["clip"]["roc_auc"] == pytest.approx(
        skm.roc_auc_score(table["label"], table["fake_probability"])
    )
    assert "ROC AUC" in result.output  # type: ignore[attr-defined]


def test_experiment_command_without_data_is_a_clean_error(tmp_path: Path) -> None:
    config = tmp_path / "empty.yaml"
    config.write_text("experiment:\n  repeats: 1\n")
    result = _cli(["experiment", str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "no data" in result.output and "Traceback" not in result.output  # type: ignore[attr-defined]


def test_dispersion_scores_match_their_definition() -> None:
    from deepfake_detect.experiment.diagnostics import dispersion_auc, dispersion_scores

    rng = np.random.default_rng(0)
    still = np.tile(rng.normal(size=(1, 8)), (6, 1)) * np.arange(1, 7)[:, None]  # one direction, any length
    orthogonal = np.eye(6, 8) * 3.0
    moving = rng.normal(size=(6, 8))
    embeddings = {"a": still, "b": orthogonal, "c": moving}
    rows = pd.DataFrame({"clip_key": ["a", "b", "c"], "label": [0, 1, 1]})
    scores = dispersion_scores(embeddings, rows)
    unit = moving / np.linalg.norm(moving, axis=1, keepdims=True)
    mean_cos = np.mean([[u @ v for v in unit] for u in unit])
    assert scores == pytest.approx([0.0, (1 - 1 / 6) / 2, (1 - mean_cos) / 2])
    # the squared length of the mean unit embedding is the mean cosine similarity
    assert np.linalg.norm(unit.mean(axis=0)) ** 2 == pytest.approx(mean_cos)
    assert dispersion_auc(embeddings, rows) == pytest.approx(skm.roc_auc_score([0, 1, 1], scores))
    assert np.isnan(dispersion_auc(embeddings, rows.assign(label=1)))


def test_evaluate_command_scores_a_clip_store_with_a_model(tiny_experiment: Path) -> None:
    out = tiny_experiment / "evaluate-cli"
    result = _cli(
        [
            "evaluate",
            str(tiny_experiment / "clips"),
            "--model",
            str(tiny_experiment / "model"),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == 24 and predictions["fake_probability"].between(0, 1).all()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["clip"]["n"] == 24 and saved["video"]["n"] == 12
    assert saved["model"] == {
        "kind": "sequence",
        "path": str(tiny_experiment / "model"),
        "backbone": "cnn4",
        "head": "lstm",
    }


def _numbers(report: dict) -> dict:
    """The report without what may differ between two identical runs (wall and CPU times, paths)."""
    return {k: v for k, v in report.items() if k not in ("timings_s", "cpu_s", "model", "figures")}


def test_same_seed_twice_gives_identical_numbers(tiny_experiment: Path) -> None:
    """Reproducible: the tiny experiment rerun on the same store gives the same report, number for number."""
    from deepfake_detect.experiment.report import build_report
    from deepfake_detect.experiment.runner import run_experiment

    first = json.loads((tiny_experiment / "report" / "report.json").read_text())
    again = run_experiment(
        config_from_dict(TINY), ClipStore(tiny_experiment / "clips"), tiny_experiment / "again"
    )
    second = json.loads(json.dumps(build_report(again), allow_nan=True))
    first.pop("conclusions")
    assert _numbers(second) == _numbers(first)
    env = first["environment"]
    assert env["precision"]["extractor training"] == "32" and env["torch"]["threads"] >= 1
    assert env["digests"]["clip crops"].endswith("(144 files)") and env["code_revision"]


def test_calibrated_log_loss_follows_from_the_predictions_and_temperature(tiny_experiment: Path) -> None:
    from deepfake_detect.models.calibration import apply_temperature

    report = json.loads((tiny_experiment / "report" / "report.json").read_text())
    t1 = report["table1"]["clip"]
    for r in range(2):
        preds = pd.read_csv(
            tiny_experiment / "report" / f"rep{r}" / "cnn4" / "lstm" / "evaluation" / "predictions.csv"
        )
        temperature = t1["temperature"]["values"][r]
        assert temperature > 0
        calibrated = np.clip(apply_temperature(preds["fake_probability"], temperature), 1e-15, 1 - 1e-15)
        assert t1["log_loss_calibrated"]["values"][r] == pytest.approx(
            skm.log_loss(preds["label"], calibrated)
        )
    assert {"reliability (lstm)", "reliability (mlp)", "reliability (frame-mlp)"} <= set(report["figures"])
    assert (tiny_experiment / "report" / "reliability_frame-mlp.png").stat().st_size > 1000
    model = json.loads((tiny_experiment / "model" / "config.json").read_text())
    assert model["temperature"] == pytest.approx(report["model"]["temperature"]) and model["temperature"] > 0


def test_final_model_is_trained_on_all_clips_and_its_card_quotes_the_repetitions(
    tiny_experiment: Path,
) -> None:
    report = json.loads((tiny_experiment / "report" / "report.json").read_text())
    card = json.loads((tiny_experiment / "model" / "config.json").read_text())["card"]
    aucs = report["table1"]["clip"]["roc_auc"]
    assert card["expected_auc"]["clip_roc_auc"] == pytest.approx(aucs["mean"])
    assert card["expected_auc"]["ci95"] == pytest.approx(aucs["ci95"])
    assert card["expected_auc"]["repetitions"] == 2
    training = card["training"]
    n_clips = report["settings"]["clips"]
    assert training["training_clips"] + training["calibration_clips"] == n_clips  # every labelled clip
    assert training["calibration_clips"] >= 4 and training["repetitions"] == 2 and training["seed"] == 0
    assert "all 24 labelled clips" in report["model"]["trained_on"]


def test_replications_by_dataset_share_no_clip(tmp_path: Path, astronaut_rgb: np.ndarray) -> None:
    """replicate_by dataset: repetition r splits only the r-th dataset, and the report says so."""
    from deepfake_detect.experiment.report import build_report
    from deepfake_detect.experiment.runner import ExperimentError, run_experiment

    make_clip_store(tmp_path / "clips", astronaut_rgb, sources=4, seed=1, dataset="a")
    store = make_clip_store(tmp_path / "clips", astronaut_rgb, sources=4, seed=2, dataset="b")
    settings = {**TINY, "experiment": {**TINY["experiment"], "table2_backbones": ["cnn4"]}}
    settings["experiment"]["replicate_by"] = "dataset"
    result = run_experiment(config_from_dict(settings), store, tmp_path / "report")
    seen = []
    for r in range(2):
        split = pd.read_csv(tmp_path / "report" / f"rep{r}" / "split.csv")
        assert split["video_id"].str[0].nunique() == 1 and len(split) == 16  # one dataset, all its clips
        seen.append(split["video_id"].str[0].iloc[0])
    assert seen == ["a", "b"]
    report = build_report(result)
    assert report["settings"]["independent_data"] is True
    from deepfake_detect.experiment.report_text import conclusions

    assert all("not independent" not in c for c in conclusions(report))
    settings["experiment"]["repeats"] = 3
    with pytest.raises(ExperimentError, match="needs 3 datasets"):
        run_experiment(config_from_dict(settings), store, tmp_path / "again")


def test_synthetic_replications_get_their_own_folders_and_seeds(tmp_path: Path) -> None:
    from deepfake_detect.experiment.prepare import synth_folders

    one = synth_folders(config_from_dict({"seed": 3, "data": {"synth": {"videos": 4}}}), tmp_path)
    assert one == [(tmp_path / "synth", "synth", 3)]
    three = synth_folders(
        config_from_dict({"seed": 3, "data": {"synth": {"videos": 4, "replications": 3}}}), tmp_path
    )
    assert three == [(tmp_path / "synth" / f"rep{k}", f"synth-{k}", 3 + k) for k in range(3)]
