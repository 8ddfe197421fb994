"""``experiment.frame_model``: "frame model alone" and "frame model + head" on the experiment's own splits,
with an imported ``timm-frame`` model (random weights in the published state-dict layout, timm resnet10t at
64 px so that it runs in seconds on a CPU)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import metrics as skm
from torch import nn

from deepfake_detect.config import config_from_dict
from deepfake_detect.data.store import ClipStore, clip_keys
from deepfake_detect.models.importers import import_model
from test_experiment import make_clip_store
from test_importers import _spread

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SIZE = 64  # the recipe's input; the store's crops are 32 px, enlarged by the isotropic rule (INTER_CUBIC)


def prepare_by_hand(crops: np.ndarray) -> torch.Tensor:
    """uint8 (T, 32, 32, 3) -> the recipe's input: enlarged to 64 (INTER_CUBIC), / 255, mean/std."""
    big = np.stack([cv2.resize(c, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC) for c in crops])
    return torch.from_numpy(((big.astype(np.float32) / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2).copy())


def config(frame_dir: Path, **experiment: object) -> dict:
    return {
        "extractor": {"backbone": "cnn4", "input_size": 32, "embed_dim": 16, "hinge": False},
        "head": {"options": {"hidden": 16, "layers": 1}, "epochs": 2, "batch_size": 8},
        "experiment": {
            "repeats": 2,
            "test_clips": 8,
            "val_clips": 4,
            "table2_backbones": [],
            "table3_heads": ["lstm"],
            "frame_model_heads": ["lstm", "frame-mlp"],
            "frame_model": str(frame_dir),
            **experiment,
        },
    }


@pytest.fixture(scope="module")
def frame_setup(
    tmp_path_factory: pytest.TempPathFactory, astronaut_rgb: np.ndarray
) -> tuple[Path, nn.Module]:
    """A clip store, and a timm-frame model imported from a state dict: (root, the original module)."""
    import timm

    root = tmp_path_factory.mktemp("frame-exp")
    store = make_clip_store(root / "clips", astronaut_rgb)
    sample = prepare_by_hand(
        np.concatenate([store.read_clip(r) for _, r in store.clips().head(8).iterrows()])
    )
    torch.manual_seed(0)  # alone AUCs 0.5 and 0.625 on the two test sets: neither 0 nor 1
    original = _spread(timm.create_model("resnet10t", pretrained=False, num_classes=1), sample)
    torch.save({"state_dict": original.state_dict()}, root / "r10t.pth")
    (root / "recipe.yaml").write_text(
        "arch: resnet10t\nnum_outputs: 1\noutput: sigmoid\n"
        f"recipe: {{frames: 8, crop: {{rule: isotropic-pad, size: {SIZE}}}, aggregation: mean}}\n"
        "card: {licence: CC-BY-4.0, training_data: random weights}\n"
    )
    import_model("timm-frame", [root / "r10t.pth"], root / "model", recipe=root / "recipe.yaml")
    return root, original.eval()


@pytest.fixture(scope="module")
def frame_report(frame_setup: tuple[Path, nn.Module]) -> dict:
    from deepfake_detect.experiment.report import write_report
    from deepfake_detect.experiment.runner import run_experiment

    root, _ = frame_setup
    stages: list[tuple[str, int, int]] = []
    result = run_experiment(
        config_from_dict(config(root / "model")),
        ClipStore(root / "clips"),
        root / "report",
        progress=lambda *a: stages.append(a),
    )
    write_report(result, root / "report")
    assert len(stages) == stages[-1][2] and stages[-1][1] == stages[-1][2] - 1  # one call per stage
    return json.loads((root / "report" / "report.json").read_text())


def test_the_table_puts_alone_and_heads_side_by_side(
    frame_setup: tuple[Path, nn.Module], frame_report: dict
) -> None:
    root, _ = frame_setup
    section = frame_report["frame_model"]
    assert [r["name"] for r in section["rows"]] == ["alone", "lstm", "frame-mlp"]
    assert [r["label"] for r in section["rows"]][:2] == ["resnet10t alone", "resnet10t + lstm"]
    assert section["member"] == 0 and section["members"] == 1 and section["repetitions"] == 2
    for row in section["rows"]:
        for metric in ("roc_auc", "log_loss"):
            assert len(row["clip"][metric]["values"]) == 2 and np.isfinite(row["clip"][metric]["mean"])
    diffs = {d["label"]: d for d in section["differences"]}
    assert set(diffs) == {"lstm minus alone", "frame-mlp minus alone", "lstm minus frame-mlp"}
    aucs = {r["name"]: np.asarray(r["clip"]["roc_auc"]["values"]) for r in section["rows"]}
    paired = diffs["lstm minus alone"]["auc_difference"]
    np.testing.assert_allclose(paired["values"], aucs["lstm"] - aucs["alone"])
    assert paired["ci95"][0] < paired["mean"] < paired["ci95"][1]
    assert "clip store's square face crops" in section["crops"]
    text = (root / "report" / "report.md").read_text()
    assert "## Frame model: alone vs + heads" in text
    assert text.index("## Frame model") < text.index("## Conclusions")
    assert "| resnet10t alone | clip |" in text and "| resnet10t + lstm | clip |" in text
    assert "not the frame model's own face recipe" in text and "mean over its crops" in text
    said = [c for c in frame_report["conclusions"] if "`resnet10t + lstm`" in c and "`resnet10t alone`" in c]
    assert len(said) == 1


def test_alone_auc_equals_a_plain_recomputation(
    frame_setup: tuple[Path, nn.Module], frame_report: dict
) -> None:
    """The original module on the store's crops, prepared by hand, mean P(fake) per clip -> sklearn AUC."""
    root, original = frame_setup
    store = ClipStore(root / "clips")
    rows = store.clips()
    by_key = {key: row for key, (_, row) in zip(clip_keys(rows), rows.iterrows(), strict=True)}
    alone = frame_report["frame_model"]["rows"][0]["clip"]
    for repeat in range(2):
        split = pd.read_csv(root / "report" / f"rep{repeat}" / "split.csv")
        test = split[split["side"] == "test"]
        means = []
        for key in test["clip_key"]:
            crops = store.read_clip(by_key[key])
            with torch.no_grad():
                p = torch.sigmoid(original(prepare_by_hand(crops)))[:, 0]
            means.append(float(p.mean()))
        want = skm.roc_auc_score(test["label"], means)
        assert alone["roc_auc"]["values"][repeat] == pytest.approx(want, abs=1e-9)
        saved = pd.read_csv(
            root / "report" / f"rep{repeat}" / "frame_model" / "alone" / "evaluation" / "predictions.csv"
        )
        np.testing.assert_allclose(saved["fake_probability"], means, atol=1e-5)
        want_loss = skm.log_loss(test["label"], np.clip(means, 1e-15, 1 - 1e-15), labels=[0, 1])
        assert alone["log_loss"]["values"][repeat] == pytest.approx(want_loss, rel=1e-6)


def test_same_seed_twice_gives_the_same_frame_model_numbers(
    frame_setup: tuple[Path, nn.Module], frame_report: dict
) -> None:
    """The rerun shares the first run's cache (the frozen model's per-crop outputs are read back, not
    recomputed, which keeps this test short): the same splits, heads and numbers, row for row."""
    from deepfake_detect.experiment.report import build_report
    from deepfake_detect.experiment.runner import run_experiment

    root, _ = frame_setup
    cache = root / "report" / "cache"
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("*.npy")}
    assert any("frame_probabilities" in p.parts for p in before)
    (root / "again").mkdir()
    (root / "again" / "cache").symlink_to(cache, target_is_directory=True)
    again = run_experiment(
        config_from_dict(config(root / "model")), ClipStore(root / "clips"), root / "again"
    )
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.npy")} == before  # read, none rewritten
    second = json.loads(json.dumps(build_report(again), allow_nan=True))
    assert second["frame_model"] == frame_report["frame_model"]
    assert second["table1"] == frame_report["table1"]


def test_the_cli_headline_lists_the_frame_model_rows(frame_report: dict) -> None:
    from rich.console import Console

    from deepfake_detect.cli.experiment import _headline

    console = Console(width=300, record=True)
    console.print(_headline(frame_report))
    text = console.export_text()
    alone = frame_report["frame_model"]["rows"][0]["clip"]["roc_auc"]
    assert "frame model: resnet10t alone (clips)" in text and "frame model: resnet10t + lstm (clips)" in text
    assert f"{alone['mean']:.3f} ± {alone['std']:.3f}" in text


def test_frame_model_path_is_relative_to_the_config_file_and_checked(
    frame_setup: tuple[Path, nn.Module], tmp_path: Path
) -> None:
    from deepfake_detect.config import load_config
    from deepfake_detect.experiment.frame_model import load_frame_model_rows
    from deepfake_detect.models.io import ModelDirError
    from deepfake_detect.registry import UnknownNameError

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "exp.yaml").write_text("experiment: {frame_model: ../models/b7}\n")
    loaded = load_config(tmp_path / "sub" / "exp.yaml")
    assert loaded.experiment.frame_model == (tmp_path / "models" / "b7").resolve()
    assert load_config().experiment.frame_model is None

    def run(kind: str, label: str, fn: Callable[[], object]) -> object:  # the clock without timing
        return fn()

    assert load_frame_model_rows(load_config(), tmp_path, run) is None
    (tmp_path / "trained").mkdir()
    not_frame = config_from_dict(config(tmp_path / "trained"))
    with pytest.raises(ModelDirError, match="not an imported frame model"):
        load_frame_model_rows(not_frame, tmp_path, run)
    root, _ = frame_setup
    typo = config_from_dict(config(root / "model", frame_model_heads=["lstm", "lsmt"]))
    with pytest.raises(UnknownNameError, match="lsmt"):
        load_frame_model_rows(typo, tmp_path, run)
