"""An imported frame model as a frozen per-frame extractor: ``embed`` and ``train-head`` with
``-e FRAME_MODEL_DIR`` (random-weight DFDC-winner checkpoints, EfficientNet-B0, in the published layout)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deepfake_detect.cli.app import _load_commands, app
from deepfake_detect.data.store import ClipStore, clip_key
from deepfake_detect.models.frame_extractor import FrameFeatureExtractor
from deepfake_detect.models.io import load_model_dir
from test_importers import WinnerClassifier, face_crops, winner_checkpoint
from test_training import make_store

os.environ.setdefault("HF_HUB_OFFLINE", "1")
_load_commands()

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@pytest.fixture(scope="module")
def winner_dir(
    tmp_path_factory: pytest.TempPathFactory, astronaut_rgb: np.ndarray
) -> tuple[Path, list[WinnerClassifier]]:
    root = tmp_path_factory.mktemp("winner-fx")
    sample = face_crops(astronaut_rgb, 380, normalise=True)
    files = [root / f"final_{i}_DeepFakeClassifier_tf_efficientnet_b0_ns_0_best_dice" for i in range(2)]
    originals = [winner_checkpoint(f, sample, seed=i) for i, f in enumerate(files)]
    out = root / "model"
    result = CliRunner().invoke(app, ["import-model", "dfdc-winner", *map(str, files), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, originals


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ClipStore:
    return make_store(tmp_path_factory.mktemp("fx-store"), videos=4)


def pooled_reference(original: WinnerClassifier, crops: np.ndarray) -> np.ndarray:
    """The original module's pooled features (its fc's input) on the store's crops, prepared by hand:
    a square 40 px crop enlarged to 380 (INTER_CUBIC, as the isotropic rule does upwards), / 255,
    ImageNet mean/std."""
    big = np.stack([cv2.resize(c, (380, 380), interpolation=cv2.INTER_CUBIC) for c in crops])
    x = torch.from_numpy(((big.astype(np.float32) / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        pooled = original.avg_pool(original.encoder.forward_features(x)).flatten(1)
    return pooled.numpy()  # (T, 1280)


def test_embed_caches_the_members_pooled_features(
    winner_dir: tuple[Path, list[WinnerClassifier]], store: ClipStore, tmp_path: Path
) -> None:
    model_dir, originals = winner_dir
    cache = tmp_path / "cache"
    args = ["embed", str(store.root), str(cache), "-e", str(model_dir), "--no-progress", "-q"]
    result = CliRunner().invoke(app, [*args, "--member", "1"])
    assert result.exit_code == 0, result.output
    (digest_dir,) = cache.iterdir()
    assert digest_dir.name.startswith("frame-")
    row = store.clips().iloc[0]
    cached = np.load(digest_dir / (clip_key(row).replace("/", "__") + ".npy"))
    assert cached.dtype == np.float16 and cached.shape == (8, 1280)
    want = pooled_reference(originals[1], store.read_clip(row))
    np.testing.assert_allclose(cached.astype(np.float32), want, rtol=2e-3, atol=2e-3)
    other = pooled_reference(originals[0], store.read_clip(row))
    assert np.abs(want - other).max() > 0.05  # member 0 would give other features
    assert len(list(digest_dir.glob("*.npy"))) == len(store.clips())
    bad = CliRunner().invoke(app, [*args, "--member", "2"])
    assert bad.exit_code != 0 and "2 member(s)" in bad.output and "Traceback" not in bad.output


@pytest.mark.slow
def test_train_head_on_frame_features_writes_a_model_detect_uses(
    winner_dir: tuple[Path, list[WinnerClassifier]],
    store: ClipStore,
    tmp_path: Path,
    face_clip_writer: Callable[..., Path],
    astronaut_rgb: np.ndarray,
) -> None:
    model_dir, originals = winner_dir
    before = sorted(p.name for p in model_dir.iterdir())
    out = tmp_path / "det"
    tiny = ["--set", "head.options.hidden=8", "--set", "head.options.layers=2", "--set", "head.batch_size=2"]
    tiny += ["--epochs", "2", "--split", "all", "--no-progress", "-q"]
    result = CliRunner().invoke(
        app,
        ["train-head", str(store.root), str(out), "-e", str(model_dir), "--head", "lstm", *tiny],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in model_dir.iterdir()) == before  # nothing written into the import
    loaded = load_model_dir(out / "model")
    assert isinstance(loaded.extractor, FrameFeatureExtractor)
    assert loaded.config.embed_dim == 1280 and loaded.config.head_kwargs["input_dim"] == 1280
    record = loaded.config.frame_extractor
    assert record is not None and record["source"]["family"] == "dfdc-winner"
    assert record["source"]["member"] == 0 and record["crop_rule"] == "isotropic-pad"
    crops = store.read_clip(store.clips().iloc[0])
    with torch.no_grad():
        got = loaded.extractor(loaded.extractor.prepare(crops)).numpy()
    np.testing.assert_allclose(got, pooled_reference(originals[0], crops), rtol=1e-4, atol=1e-4)
    video_file = face_clip_writer(tmp_path / "face.mp4", [astronaut_rgb], frames=20, side=320)
    report = tmp_path / "report.json"
    detect = CliRunner().invoke(
        app,
        ["detect", str(video_file), "--model", str(out / "model"), "--json", str(report), "--threads", "1"],
    )
    assert detect.exit_code == 0, detect.output
    (video,) = json.loads(report.read_text())["videos"]
    assert video["status"] == "ok", video
    assert 0.0 <= video["fake_probability"] <= 1.0
    evaluation = tmp_path / "eval"
    evaluate = ["evaluate", str(store.root), "--model", str(out / "model"), "--out", str(evaluation), "-q"]
    result = CliRunner().invoke(app, evaluate)
    assert result.exit_code == 0, result.output
    trained_key = [p.name for p in (out / "embeddings").iterdir()]
    assert [p.name for p in (evaluation / "cache").iterdir()] == trained_key  # same digest after reload
    assert json.loads((evaluation / "metrics.json").read_text())["clip"]["log_loss"] >= 0.0
    export = CliRunner().invoke(app, ["export", str(tmp_path / "onnx"), "--model", str(out / "model")])
    assert export.exit_code != 0 and "frozen frame model" in export.output
