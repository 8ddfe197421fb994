"""``evaluate STORE --model FRAME_DIR``: an imported frame model scores a clip store (issue 10, item 2).

Two ``timm-frame`` members (random weights in the published state-dict layout, timm resnet10t at 64 px, so
that it runs in seconds on a CPU); the clip's P(fake) is each member's mean per-crop P(fake) over the
clip's crops, then the mean over the members."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import metrics as skm
from torch import nn
from typer.testing import CliRunner

from deepfake_detect.cli.app import _load_commands, app
from deepfake_detect.data.store import ClipStore, clip_keys
from deepfake_detect.models.importers import import_model
from test_experiment import make_clip_store
from test_experiment_frame_model import SIZE, prepare_by_hand
from test_importers import _spread

os.environ.setdefault("HF_HUB_OFFLINE", "1")
_load_commands()


@pytest.fixture(scope="module")
def frame_eval(
    tmp_path_factory: pytest.TempPathFactory, astronaut_rgb: np.ndarray
) -> tuple[Path, list[nn.Module]]:
    """A clip store and a two-member timm-frame model: (root, the original modules)."""
    import timm

    root = tmp_path_factory.mktemp("frame-eval")
    store = make_clip_store(root / "clips", astronaut_rgb, sources=4)
    sample = prepare_by_hand(
        np.concatenate([store.read_clip(r) for _, r in store.clips().head(8).iterrows()])
    )
    originals = []
    for seed in range(2):
        torch.manual_seed(seed)
        module = _spread(timm.create_model("resnet10t", pretrained=False, num_classes=1), sample)
        torch.save({"state_dict": module.state_dict()}, root / f"r10t-{seed}.pth")
        originals.append(module.eval())
    (root / "recipe.yaml").write_text(
        "arch: resnet10t\nnum_outputs: 1\noutput: sigmoid\n"
        f"recipe: {{frames: 8, crop: {{rule: isotropic-pad, size: {SIZE}}}, aggregation: mean}}\n"
        "card: {licence: CC-BY-4.0, training_data: random weights}\n"
    )
    checkpoints = [root / "r10t-0.pth", root / "r10t-1.pth"]
    import_model("timm-frame", checkpoints, root / "model", recipe=root / "recipe.yaml")
    return root, originals


def recomputed(store: ClipStore, keys: pd.Series, originals: list[nn.Module]) -> np.ndarray:
    """Per clip: each original module's mean sigmoid over the hand-prepared crops, mean over modules."""
    rows = store.clips()
    by_key = {key: row for key, (_, row) in zip(clip_keys(rows), rows.iterrows(), strict=True)}
    out = []
    for key in keys:
        x = prepare_by_hand(store.read_clip(by_key[key]))
        with torch.no_grad():
            out.append(np.mean([float(torch.sigmoid(m(x))[:, 0].mean()) for m in originals]))
    return np.asarray(out)


def test_evaluate_scores_a_store_with_a_frame_model(
    frame_eval: tuple[Path, list[nn.Module]], tmp_path: Path
) -> None:
    root, originals = frame_eval
    out = tmp_path / "eval"
    args = ["evaluate", str(root / "clips"), "--model", str(root / "model"), "--out", str(out), "-q"]
    result = CliRunner().invoke(app, args, terminal_width=300)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert f"model: {root / 'model'} (timm-frame frame model resnet10t, 2 members;" in said
    assert (out / "roc.png").stat().st_size > 0 and (out / "score_histogram.png").is_file()
    saved = json.loads((out / "metrics.json").read_text())
    model = saved["model"]
    assert model["kind"] == "frame" and model["arch"] == "resnet10t" and model["members"] == 2
    assert model["family"] == "timm-frame" and model["sources"] == ["r10t-0.pth", "r10t-1.pth"]
    assert model["input"] == f"isotropic-pad to {SIZE} px"

    predictions = pd.read_csv(out / "predictions.csv")
    store = ClipStore(root / "clips")
    assert len(predictions) == len(store.clips()) == 16
    want = recomputed(store, predictions["clip_key"], originals)
    np.testing.assert_allclose(predictions["fake_probability"], want, atol=1e-5)
    auc = skm.roc_auc_score(predictions["label"], want)
    assert 0.0 < auc < 1.0  # a ranking that a wrong order or a wrong member would change
    assert saved["clip"]["roc_auc"] == pytest.approx(auc, abs=1e-9)
    videos = predictions.assign(p=want).groupby("video_id").agg(label=("label", "first"), p=("p", "mean"))
    assert saved["video"]["roc_auc"] == pytest.approx(skm.roc_auc_score(videos["label"], videos["p"]))
    assert saved["video"]["n"] == 8

    cached = sorted((out / "cache" / "frame_probabilities").iterdir())
    assert len(cached) == 2 and all(len(list(d.glob("*.npy"))) == 16 for d in cached)  # one per member
    assert sorted(p.name for p in (root / "model").iterdir()) == [
        "config.json",
        "member-0.safetensors",
        "member-1.safetensors",
    ]  # nothing written into the import


def test_evaluate_explains_an_unusable_frame_model(
    frame_eval: tuple[Path, list[nn.Module]], tmp_path: Path
) -> None:
    import shutil

    root, _ = frame_eval

    def evaluate(model_dir: Path) -> str:
        out = tmp_path / f"eval-{model_dir.name}"
        args = ["evaluate", str(root / "clips"), "--model", str(model_dir), "--out", str(out), "-q"]
        result = CliRunner().invoke(app, args, terminal_width=300)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert not isinstance(result.exception, Exception), result.exception  # a clean exit, no error
        assert not (out / "metrics.json").exists()
        return " ".join(result.output.split())

    missing = tmp_path / "missing"
    shutil.copytree(root / "model", missing)
    (missing / "member-1.safetensors").unlink()
    assert "missing member-1.safetensors" in evaluate(missing)

    corrupt = tmp_path / "corrupt"
    shutil.copytree(root / "model", corrupt)
    (corrupt / "member-1.safetensors").write_bytes(b"not a safetensors file")
    assert "is not a readable safetensors file" in evaluate(corrupt)

    from safetensors.torch import load_file, save_file

    short = tmp_path / "short"
    shutil.copytree(root / "model", short)
    state = load_file(str(short / "member-1.safetensors"))
    dropped = sorted(state)[0]
    save_file({k: v for k, v in state.items() if k != dropped}, str(short / "member-1.safetensors"))
    said = evaluate(short)
    assert "member-1.safetensors does not fit" in said and f"missing keys: {dropped}" in said

    bad_config = tmp_path / "bad_config"
    shutil.copytree(root / "model", bad_config)
    config = json.loads((bad_config / "config.json").read_text())
    config["recipe"]["crop"]["size"] = "big"
    (bad_config / "config.json").write_text(json.dumps(config))
    assert "config.json is invalid: recipe.crop.size" in evaluate(bad_config)
