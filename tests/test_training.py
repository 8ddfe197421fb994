"""Training (issue 3): datasets, extractor and head runs, checkpoints/resume, embedding cache, CLI, DDP.

Everything runs on a tiny clip store made here from a real photograph (skimage's astronaut): real clips pan
smoothly over the face, fake clips jump to a random crop every frame.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from deepfake_detect.config import Config, FaceConfig, config_from_dict
from deepfake_detect.data.store import ClipStore, clip_key, clip_row
from deepfake_detect.types import Label, VideoRecord

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FRAMES = 8
CROP = 40
TINY = [
    "extractor.backbone=cnn4",
    "extractor.input_size=32",
    "extractor.embed_dim=16",
    "extractor.epochs=2",
    "extractor.extractor_clip_len=4",
    "extractor.batch_size=4",
    "extractor.precision='32'",
    "head.options.hidden=8",
    "head.options.layers=2",
    "head.epochs=2",
    "head.batch_size=4",
]


def tiny_config(*extra: str) -> Config:
    return config_from_dict({}, [*TINY, *extra])


def _write_video(
    store: ClipStore, index: int, face: np.ndarray, rng: np.random.Generator, split: str
) -> None:
    fake = index % 2 == 1
    record = VideoRecord(
        video_id=f"vid{index:02d}",
        path=Path(f"vid{index:02d}.mp4"),
        label=Label.FAKE if fake else Label.REAL,
        source_id=f"src{index // 2:02d}",  # each fake is made from the real video before it
        dataset="toy",
        split=split,
    )
    work = store.work_dir(record.video_id)
    (work / "t0").mkdir()
    frames = list(range(0, 2 * FRAMES, 2))  # stride 2
    for step, frame in enumerate(frames):
        dx, dy = rng.integers(0, 60, size=2) if fake else (10 + 3 * step, 20)
        crop = face[dy : dy + 160, dx : dx + 160]
        Image.fromarray(crop).resize((CROP, CROP)).save(work / "t0" / f"{frame:06d}.jpg", quality=95)
    rows = [clip_row(record, 0, 0, frames, [f / 25 for f in frames])]
    store.write_video_rows(record.video_id, rows, work)


def make_store(root: Path, videos: int = 8, splits: dict[int, str] | None = None) -> ClipStore:
    from skimage import data

    face = data.astronaut()[30:250, 130:350]  # (220, 220, 3) around the face
    rng = np.random.default_rng(0)
    store = ClipStore(root)
    faces = FaceConfig(margin=0.3, crop_size=CROP).model_dump(mode="json", exclude={"device"})
    store.ensure_settings({"faces": faces, "frame_stride": 2, "clip_len": FRAMES})
    for index in range(videos):
        _write_video(store, index, face, rng, (splits or {}).get(index, "train"))
    store.consolidate()
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ClipStore:
    return make_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def rows(store: ClipStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    from deepfake_detect.training import split_train_val

    train, val = split_train_val(store.clips(), val_fraction=0.3, seed=0)
    assert val is not None
    return train, val


@pytest.fixture(scope="module")
def trained(
    store: ClipStore, rows: tuple[pd.DataFrame, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
):
    from deepfake_detect.training import train_extractor

    out = tmp_path_factory.mktemp("extractor")
    return train_extractor(tiny_config(), store, *rows, out, progress=False, accelerator="cpu")


# -- datasets ------------------------------------------------------------------------------------------


def test_window_dataset_reads_the_right_frames(store: ClipStore) -> None:
    from deepfake_detect.training import ClipWindowDataset

    clips = store.clips()
    train = ClipWindowDataset(store, clips, 4, random_window=True, seed=3)
    starts = {}
    for epoch in range(6):
        train.set_epoch(epoch)
        starts[epoch] = [train.window_start(i) for i in range(len(train))]
        frames, label = train[1]
        reference = store.read_clip(clips.iloc[1].to_dict())  # (T, H, W, 3), an independent reader
        s = starts[epoch][1]
        assert frames.dtype == torch.uint8 and frames.shape == (4, CROP, CROP, 3)
        assert torch.equal(frames, torch.from_numpy(reference[s : s + 4]))
        assert float(label) == 1.0
    assert all(0 <= s <= FRAMES - 4 for ss in starts.values() for s in ss)
    assert len({tuple(v) for v in starts.values()}) > 1  # windows move between epochs
    train.set_epoch(2)
    assert [train.window_start(i) for i in range(len(train))] == starts[2]  # deterministic per epoch
    val = ClipWindowDataset(store, clips, 4, random_window=False)
    assert all(val.window_start(i) == 0 for i in range(len(val)))


def test_persistent_workers_draw_each_epochs_windows(store: ClipStore) -> None:
    """The sampler tags indices with their epoch, so a worker started once still reads each epoch's window."""
    from torch.utils.data import DataLoader

    from deepfake_detect.training import ClipWindowDataset
    from deepfake_detect.training.datamodules import EpochShuffleSampler, EpochWindowSampler, loader_kwargs

    clips = store.clips()
    data = ClipWindowDataset(store, clips, 4, random_window=True, seed=3)
    sampler = EpochWindowSampler(len(data), seed=5)
    loader = DataLoader(data, batch_size=3, sampler=sampler, **loader_kwargs(1, persistent=True))
    reference = [store.read_clip(row) for row in clips.to_dict("records")]  # (T, H, W, 3) each
    seen = []
    for epoch in range(3):
        sampler.set_epoch(epoch)  # as Lightning does; the worker's dataset copy never sees it
        got = torch.cat([frames for frames, _ in loader])  # (N, 4, H, W, 3) in the sampler's order
        shuffle = EpochShuffleSampler(len(data), seed=5)
        shuffle.set_epoch(epoch)
        order = list(shuffle)
        expected = []
        for index in order:
            start = data.window_start(index, epoch)
            expected.append(torch.from_numpy(reference[index][start : start + 4]))
        assert torch.equal(got, torch.stack(expected))
        seen.append([data.window_start(i, epoch) for i in range(len(data))])
    assert len({tuple(s) for s in seen}) > 1  # the windows did move between epochs
    assert data.epoch == 0  # set_epoch was never needed in the parent either


def test_frame_cache_serves_later_epochs_within_its_budget(tmp_path: Path) -> None:
    from deepfake_detect.training import ClipWindowDataset

    store = make_store(tmp_path / "store", videos=4)
    clips = store.clips()
    frame_bytes = CROP * CROP * 3
    cached = ClipWindowDataset(store, clips, 4, random_window=False, cache_mb=1.0)
    small = ClipWindowDataset(store, clips, 4, random_window=False, cache_mb=6 * frame_bytes / 2**20)
    first = [cached[i][0] for i in range(len(cached))]
    for i in range(len(small)):
        small[i]
    assert cached.cache is not None and cached.cache.used == len(clips) * 4 * frame_bytes
    assert small.cache is not None and small.cache.used == 6 * frame_bytes  # the budget, not more
    shutil.rmtree(store.root / "crops")  # later reads can only come from memory now
    assert all(torch.equal(cached[i][0], first[i]) for i in range(len(cached)))
    assert torch.equal(small[0][0], first[0])  # the first clip's 4 frames fit
    with pytest.raises(FileNotFoundError, match="missing from the clip store"):
        small[1]  # 2 of its frames were cached, the others were not


def test_window_dataset_skips_short_clips(store: ClipStore) -> None:
    from deepfake_detect.training import ClipWindowDataset

    clips = store.clips().copy()
    clips.loc[0, "n_frames"] = 3
    assert len(ClipWindowDataset(store, clips, 4, random_window=False)) == len(clips) - 1
    with pytest.raises(ValueError, match="extractor_clip_len"):
        ClipWindowDataset(store, clips, FRAMES + 1, random_window=False)
    unlabelled = store.clips().copy()
    unlabelled.loc[2, "label"] = -1
    with pytest.raises(ValueError, match="no usable label"):
        ClipWindowDataset(store, unlabelled, 4, random_window=False)


def test_pad_collate_pads_right_with_lengths() -> None:
    from deepfake_detect.training import pad_collate

    a, b = torch.ones(3, 2), 2 * torch.ones(5, 2)
    x, lengths, y = pad_collate([(a, torch.tensor(1.0)), (b, torch.tensor(0.0))])
    assert x.shape == (2, 5, 2) and lengths.tolist() == [3, 5] and y.tolist() == [1.0, 0.0]
    assert torch.equal(x[0, :3], a) and torch.count_nonzero(x[0, 3:]) == 0 and torch.equal(x[1], b)


def test_split_by_source_and_split_column(store: ClipStore) -> None:
    from deepfake_detect.training import split_train_val

    clips = store.clips()
    train, val = split_train_val(clips, val_fraction=0.5, seed=1)
    assert val is not None and len(train) + len(val) == len(clips)
    assert not set(train["source_id"]) & set(val["source_id"])  # a fake stays with its original
    again, _ = split_train_val(clips, val_fraction=0.5, seed=1)
    assert again["video_id"].tolist() == train["video_id"].tolist()
    marked = clips.copy()
    marked.loc[[0, 1], "split"] = "val"
    marked.loc[[2], "split"] = "test"
    marked.loc[[3], "label"] = -1
    train, val = split_train_val(marked)
    assert val is not None and val["video_id"].tolist() == ["vid00", "vid01"]
    assert set(train["video_id"]) == {f"vid{i:02d}" for i in range(4, 8)}
    everything, none = split_train_val(marked, use="all")
    assert none is None and len(everything) == len(clips) - 1


# -- extractor -----------------------------------------------------------------------------------------


def test_train_extractor_writes_weights_curves_checkpoints(trained, store: ClipStore) -> None:
    from deepfake_detect.models import FeatureExtractor, load_weights
    from deepfake_detect.training import extractor_digest, load_trained_extractor

    out = trained.out_dir
    assert trained.history["epoch"].tolist() == [1, 2]
    assert np.isfinite(trained.history[["train_loss", "val_loss"]].to_numpy()).all()
    assert pd.read_csv(out / "history.csv")["epoch"].tolist() == [1, 2]
    with Image.open(out / "loss_curves.png") as image:
        assert image.format == "PNG" and image.size == (1000, 400)
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert list((out / "logs").glob("version_*/metrics.csv"))
    assert list((out / "tensorboard").glob("version_*/events.*"))
    # the exported weights rebuild the same extractor
    fresh = FeatureExtractor("cnn4", embed_dim=16, input_size=32)
    load_weights(fresh, trained.weights_path)
    fresh.eval()
    x = fresh.prepare(store.read_clip(store.clips().iloc[0].to_dict()))
    with torch.no_grad():
        assert torch.allclose(fresh(x), trained.extractor(x), atol=1e-6)
    assert extractor_digest(fresh) == trained.digest
    loaded, digest = load_trained_extractor(out)
    assert digest == trained.digest and not loaded.training


@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # the run folder was copied before resuming
def test_resume_continues_like_an_uninterrupted_run(trained, store, rows, tmp_path: Path) -> None:
    from deepfake_detect.training import train_extractor

    resumed_dir = tmp_path / "resumed"
    shutil.copytree(trained.out_dir, resumed_dir)
    three = tiny_config("extractor.epochs=3")
    resumed = train_extractor(
        three, store, *rows, resumed_dir, resume=True, progress=False, accelerator="cpu"
    )
    assert resumed.history["epoch"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(resumed.history.iloc[:2], trained.history)
    straight = train_extractor(three, store, *rows, tmp_path / "straight", progress=False, accelerator="cpu")
    assert straight.digest == resumed.digest  # same windows, order and optimiser state after the restart
    assert straight.digest != trained.digest
    other_model = tiny_config("extractor.epochs=4", "extractor.embed_dim=8")
    with pytest.raises(ValueError, match="cannot resume"):
        train_extractor(
            other_model, store, *rows, resumed_dir, resume=True, progress=False, accelerator="cpu"
        )


def test_same_seed_same_weights(trained, store, rows, tmp_path: Path) -> None:
    from deepfake_detect.training import train_extractor

    again = train_extractor(tiny_config(), store, *rows, tmp_path / "a", progress=False, accelerator="cpu")
    assert again.digest == trained.digest
    pd.testing.assert_frame_equal(again.history, trained.history)


def test_no_hinge_returns_the_initial_extractor(trained, store, rows, tmp_path: Path) -> None:
    import lightning as L

    from deepfake_detect.training import build_extractor, extractor_digest, train_extractor

    initial = train_extractor(
        tiny_config("extractor.hinge=false"), store, *rows, tmp_path / "a", progress=False
    )
    assert initial.history.empty and initial.weights_path.is_file()
    assert not (tmp_path / "a" / "checkpoints").exists()
    assert initial.digest != trained.digest  # training changed the weights
    L.seed_everything(5, verbose=False)
    other_seed = build_extractor(tiny_config("seed=5"))
    assert extractor_digest(other_seed) != initial.digest
    run = train_extractor(
        tiny_config("extractor.epochs=0", "seed=5"), store, *rows, tmp_path / "b", progress=False
    )
    assert run.digest == extractor_digest(other_seed)


# -- embeddings ----------------------------------------------------------------------------------------


def test_embed_clips_caches_float16_and_reuses(trained, store: ClipStore, tmp_path: Path) -> None:
    from deepfake_detect.training import cache_file, embed_clips

    clips = store.clips()
    calls: list[int] = []
    hook = trained.extractor.register_forward_hook(lambda *args: calls.append(1))
    try:
        first = embed_clips(trained.extractor, store, clips, tmp_path, digest=trained.digest, progress=False)
        n_first = len(calls)
        second = embed_clips(trained.extractor, store, clips, tmp_path, digest=trained.digest, progress=False)
        n_second = len(calls) - n_first
    finally:
        hook.remove()
    assert list(first) == [clip_key(r) for r in clips.to_dict("records")]
    assert n_first == len(clips) and n_second == 0
    for key, array in first.items():
        assert array.dtype == np.float16 and array.shape == (FRAMES, 16)
        assert np.array_equal(np.load(cache_file(tmp_path, trained.digest, key)), array)
        assert np.array_equal(second[key], array)
    row = clips.iloc[3].to_dict()
    with torch.no_grad():  # an independent forward pass in float32
        reference = trained.extractor(trained.extractor.prepare(store.read_clip(row))).numpy()
    np.testing.assert_allclose(first[clip_key(row)].astype(np.float32), reference, rtol=2e-3, atol=2e-3)
    assert cache_file(tmp_path, "d", "v/t0/c1") == tmp_path / "d" / "v__t0__c1.npy"
    np.save(cache_file(tmp_path, trained.digest, clip_key(row)), np.zeros((2, 16), np.float16))  # stale
    third = embed_clips(trained.extractor, store, clips, tmp_path, digest=trained.digest, progress=False)
    assert np.array_equal(third[clip_key(row)], first[clip_key(row)])


# -- head ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embeddings(trained, store: ClipStore, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    from deepfake_detect.training import embed_clips

    cache = tmp_path_factory.mktemp("cache")
    return embed_clips(trained.extractor, store, store.clips(), cache, digest=trained.digest, progress=False)


def test_train_head_keeps_best_epoch_and_saves_a_model_dir(trained, embeddings, rows, tmp_path: Path) -> None:
    from deepfake_detect.config import ClipConfig
    from deepfake_detect.models import load_model_dir, save_model_dir
    from deepfake_detect.training import predict_clips, train_head

    train, val = rows
    config = tiny_config("head.epochs=3")
    run = train_head(config, embeddings, train, val, tmp_path / "det", progress=False)
    assert run.head_name == "lstm"
    assert run.head_kwargs == {"input_dim": 16, "hidden": 8, "layers": 2, "dropout": 0.3}
    assert run.history["epoch"].tolist() == [1, 2, 3]
    assert run.kept_epoch == int(run.history.loc[run.history["val_loss"].idxmin(), "epoch"])
    assert (tmp_path / "det" / "loss_curves.png").is_file() and not run.head.training
    every = pd.concat([train, val], ignore_index=True)
    probs = predict_clips(run.head, embeddings, every)
    assert probs.shape == (len(every),) and ((probs > 0) & (probs < 1)).all()
    # the validation loss of the kept epoch is the BCE of the kept head on the validation clips
    val_probs = predict_clips(run.head, embeddings, val)
    y = val["label"].to_numpy(float)
    bce = -np.mean(y * np.log(val_probs) + (1 - y) * np.log(1 - val_probs))
    assert bce == pytest.approx(run.history["val_loss"].min(), abs=1e-5)
    # one clip at a time, without padding, gives the same probabilities
    for i, row in enumerate(every.to_dict("records")[:3]):
        x = torch.from_numpy(embeddings[clip_key(row)].astype(np.float32))[None]  # (1, T, D)
        with torch.no_grad():
            alone = torch.sigmoid(run.head(x, torch.tensor([x.shape[1]]))).item()
        assert alone == pytest.approx(probs[i], abs=1e-6)
    model_dir = save_model_dir(
        tmp_path / "model",
        trained.extractor,
        run.head,
        head_name=run.head_name,
        head_kwargs=run.head_kwargs,
        threshold=0.5,
        faces=FaceConfig(),
        clips=ClipConfig(),
    )
    loaded = load_model_dir(model_dir)
    np.testing.assert_allclose(predict_clips(loaded.head, embeddings, every), probs, atol=1e-6)


def test_head_learns_temporal_dispersion(tmp_path: Path) -> None:
    """Fakes whose frames point in random directions vs reals with one direction: BCE must separate them."""
    from deepfake_detect.training import predict_clips, train_head

    rng = np.random.default_rng(0)
    records, embeddings = [], {}
    for i in range(48):
        fake = i % 2
        base = rng.normal(size=(1, 8))
        frames = rng.normal(size=(6, 8)) if fake else base + 0.05 * rng.normal(size=(6, 8))
        frames /= np.linalg.norm(frames, axis=1, keepdims=True)
        records.append({"video_id": f"v{i}", "track": 0, "clip_index": 0, "label": fake})
        embeddings[f"v{i}/t0/c0"] = frames.astype(np.float16)
    table = pd.DataFrame(records)
    config = tiny_config("head.name=mlp", "head.epochs=25", "head.lr=0.01", "head.options.hidden=16")
    run = train_head(config, embeddings, table, None, tmp_path, progress=False)
    assert run.history["train_loss"].iloc[-1] < 0.5 * run.history["train_loss"].iloc[0]
    probs = predict_clips(run.head, embeddings, table)
    assert probs[table["label"] == 1].min() > probs[table["label"] == 0].max()


# -- plots, digests ------------------------------------------------------------------------------------


def test_plot_loss_curves_without_validation(tmp_path: Path) -> None:
    from deepfake_detect.training import plot_loss_curves
    from deepfake_detect.training.history import history_frame

    history = history_frame(
        [
            {"epoch": 1, "train_loss": 0.9, "val_loss": float("nan")},
            {"epoch": 2, "train_loss": 0.5, "val_loss": float("nan")},
        ]
    )
    path = plot_loss_curves(history, tmp_path / "curves.png", title="t")
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape == (400, 1000, 3) and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10
    assert "matplotlib.pyplot" not in sys.modules or not __import__("matplotlib.pyplot").pyplot.get_fignums()


def test_state_digest_tracks_every_weight() -> None:
    from deepfake_detect.training.digest import state_digest

    a = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    b = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    b.load_state_dict(a.state_dict())
    assert state_digest(a) == state_digest(b)
    with torch.no_grad():
        b[0].weight[0, 0] += 1e-6
    assert state_digest(a) != state_digest(b)
    assert state_digest(a, {"input_size": 32}) != state_digest(a, {"input_size": 64})


# -- CLI and DDP ---------------------------------------------------------------------------------------


def _cli_args(*extra: str) -> list[str]:
    return [arg for item in (*TINY, *extra) if item.startswith("extractor.") for arg in ("--set", item)]


def test_train_detector_is_a_hidden_deprecated_alias_of_train_head(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import deepfake_detect.cli.train  # noqa: F401  (registers the commands)
    from deepfake_detect.cli.app import app

    runner = CliRunner()
    old_help = runner.invoke(app, ["train-detector", "--help"])
    assert old_help.exit_code == 0, old_help.output
    assert "Deprecated: use `train-head`" in old_help.output and "--head" in old_help.output
    new_help = runner.invoke(app, ["train-head", "--help"])
    assert new_help.exit_code == 0 and "Train a sequence head" in new_help.output
    assert "default: head.name" in " ".join(new_help.output.split())
    listing = runner.invoke(app, ["--help"]).output
    assert "train-head" in listing and "train-detector" not in listing
    # the alias warns, then runs train-head itself (which fails the same way on a missing store)
    args = [str(tmp_path / "nowhere"), str(tmp_path / "out"), "-e", str(tmp_path / "ext")]
    old = runner.invoke(app, ["train-detector", *args])
    new = runner.invoke(app, ["train-head", *args])
    assert old.exit_code == new.exit_code == 1 and "clip store not found" in old.output
    assert "deprecated; use `deepfake-detect train-head`" in " ".join(old.output.split())
    assert "deprecated" not in new.output


def test_cli_train_embed_detect(store: ClipStore, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import deepfake_detect.cli.train  # noqa: F401  (registers the commands)
    from deepfake_detect.cli.app import app
    from deepfake_detect.models import load_model_dir

    runner = CliRunner()
    ext, cache, det = tmp_path / "ext", tmp_path / "cache", tmp_path / "det"
    common = ["--no-progress", "--val-fraction", "0.3", "-q"]
    bf16 = _cli_args("extractor.precision=bf16-mixed")  # the bf16 autocast path on CPU
    result = runner.invoke(app, ["train-extractor", str(store.root), str(ext), *bf16, *common])
    assert result.exit_code == 0, result.output
    assert (ext / "extractor.json").is_file() and (ext / "config.yaml").is_file()
    embed_args = ["embed", str(store.root), str(cache), "-e", str(ext), "--precision", "bf16-mixed"]
    result = runner.invoke(app, [*embed_args, "--no-progress", "-q"])
    assert result.exit_code == 0, result.output
    digest = json.loads((ext / "extractor.json").read_text())["digest"]
    assert len(list((cache / digest).glob("*.npy"))) == len(store.clips())
    head_args = ["--set", "head.options.hidden=8", "--set", "head.options.layers=2"]
    head_args += ["--epochs", "2", "--head", "mlp"]
    result = runner.invoke(
        app,
        [
            "train-head",
            str(store.root),
            str(det),
            "-e",
            str(ext),
            "--embeddings",
            str(cache),
            *head_args,
            *common,
        ],
    )
    assert result.exit_code == 0, result.output
    loaded = load_model_dir(det / "model")
    assert loaded.config.head == "mlp" and loaded.config.extra["extractor_digest"] == digest
    # faces and clips settings come from the store's store.json, not from the defaults
    assert loaded.config.faces["margin"] == 0.3 and loaded.config.clips["frame_stride"] == 2
    missing = runner.invoke(app, ["train-extractor", str(tmp_path / "nowhere"), str(ext)])
    assert missing.exit_code != 0 and "clip store not found" in missing.output
    helptext = runner.invoke(app, ["train-extractor", "--help"])
    assert "val-fraction" in helptext.output and "source" in helptext.output


@pytest.mark.slow
def test_ddp_two_cpu_processes(store: ClipStore, tmp_path: Path) -> None:
    """Lightning's DDP (gloo) launched from the CLI with --devices 2: both ranks train, rank 0 exports."""
    script = Path(sys.executable).parent / "deepfake-detect"
    out = tmp_path / "ddp"
    args = [
        str(script),
        "train-extractor",
        str(store.root),
        str(out),
        *_cli_args(),
        "--set",
        "extractor.batch_size=2",
        "--devices",
        "2",
        "--accelerator",
        "cpu",
        "--no-progress",
        "--val-fraction",
        "0.3",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "GLOBAL_RANK: 1" in result.stdout + result.stderr
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == [1, 2] and np.isfinite(history["train_loss"]).all()
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "extractor.safetensors").is_file()


def _clip_stats(
    extractor: torch.nn.Module, store: ClipStore, clips: pd.DataFrame
) -> tuple[float, float, float]:
    """(hinge loss over the clips, mean L1 = mean |S - I| of real clips, of fake clips), in eval mode."""
    from deepfake_detect.losses import identity_distance, similarity_hinge_loss

    extractor.eval()
    with torch.no_grad():
        embeddings = torch.stack(
            [extractor(extractor.prepare(store.read_clip(row._asdict()))) for row in clips.itertuples()]
        )  # (clips, T, D)
    labels = torch.as_tensor(clips["label"].to_numpy())
    l1 = identity_distance(embeddings)  # (clips,): high = frames together, low = frames apart
    loss = float(similarity_hinge_loss(embeddings, labels))
    return loss, float(l1[labels == 0].mean()), float(l1[labels == 1].mean())


def test_training_lowers_the_hinge_loss_and_keeps_real_frames_together(
    store: ClipStore, tmp_path: Path
) -> None:
    """The paper's claim at toy scale: after a few epochs real clips (smooth motion) have frames more
    alike than fake clips (frames jump), and the hinge loss over the clips is lower than at the start."""
    from deepfake_detect.training import train_extractor

    clips = store.clips()
    assert set(clips["label"]) == {0, 1}
    config = tiny_config("extractor.epochs=6", "extractor.extractor_clip_len=8")
    initial = train_extractor(tiny_config("extractor.hinge=false"), store, clips, None, tmp_path / "a")
    before = _clip_stats(initial.extractor, store, clips)
    trained = train_extractor(config, store, clips, None, tmp_path / "b", progress=False, accelerator="cpu")
    after = _clip_stats(trained.extractor, store, clips)
    assert after[0] < 0.8 * before[0], (before, after)  # the loss fell by more than a fifth
    assert after[1] > after[2] + 0.05, after  # real clips' frames are closer together than fakes'
    history = trained.history["train_loss"].to_numpy()
    assert history[-1] < history[0]


_KILLED_RUN = """
import os, signal, sys
from pathlib import Path
import deepfake_detect.training.extractor as extractor
from deepfake_detect.config import config_from_dict
from deepfake_detect.data.store import ClipStore

calls = 0
original = extractor.similarity_hinge_loss

def dies_mid_epoch(*args, **kwargs):  # training steps only (no validation): 2 per epoch
    global calls
    calls += 1
    if calls == int(sys.argv[4]):
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)

extractor.similarity_hinge_loss = dies_mid_epoch
store = ClipStore(Path(sys.argv[1]))
config = config_from_dict({}, sys.argv[3].split(";"))
out = Path(sys.argv[2])
extractor.train_extractor(config, store, store.clips(), None, out, progress=False, accelerator="cpu")
"""


def test_a_training_run_killed_mid_epoch_resumes_to_the_same_weights(
    store: ClipStore, tmp_path: Path
) -> None:
    """SIGKILL in the second training step of epoch 3 (of 4); --resume from the epoch-2 checkpoint ends
    with the weights of an uninterrupted run."""
    from deepfake_detect.training import train_extractor

    overrides = [*TINY, "extractor.epochs=4"]
    killed = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", _KILLED_RUN, str(store.root), str(killed), ";".join(overrides), "6"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    checkpoint = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 4  # epochs 1 and 2 (2 steps each) were saved; epoch 3 never finished
    assert not (killed / "extractor.safetensors").exists()
    config = config_from_dict({}, overrides)
    clips = store.clips()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the killed run: other thread counts round differently
    try:
        resumed = train_extractor(
            config, store, clips, None, killed, resume=True, progress=False, accelerator="cpu"
        )
        straight = train_extractor(
            config, store, clips, None, tmp_path / "straight", progress=False, accelerator="cpu"
        )
    finally:
        torch.set_num_threads(threads)
    assert resumed.history["epoch"].tolist() == [1, 2, 3, 4]
    assert resumed.digest == straight.digest
    pd.testing.assert_frame_equal(resumed.history, straight.history)


_DDP_RUN = """
import hashlib
import os
import sys
from pathlib import Path

from deepfake_detect.config import config_from_dict
from deepfake_detect.data.store import ClipStore
from deepfake_detect.training import datamodules, train_extractor

seen = Path(sys.argv[2]) / "seen"
original = datamodules.ClipWindowDataset.__getitem__


def recording(self, item):  # every (epoch, clip index) this rank's loader asked for
    epoch, index = item if isinstance(item, tuple) else (self.epoch, item)
    with open(seen / f"rank{os.environ.get('LOCAL_RANK', '0')}.txt", "a") as log:
        log.write(f"{epoch} {index}\\n")
    return original(self, item)


datamodules.ClipWindowDataset.__getitem__ = recording
store = ClipStore(Path(sys.argv[1]))
config = config_from_dict({}, sys.argv[3].split(";"))
out = Path(sys.argv[2]) / "run"
run = train_extractor(config, store, store.clips(), None, out, devices=2, accelerator="cpu", progress=False)
parameters = hashlib.sha256()
for name, value in run.extractor.named_parameters():  # parameters: buffers (BatchNorm statistics) are
    parameters.update(name.encode() + value.detach().numpy().tobytes())  # each rank's own in DDP
(seen / f"digest{run.global_rank}.txt").write_text(f"{parameters.hexdigest()} {run.digest}")
"""


@pytest.mark.slow
def test_ddp_ranks_split_each_epoch_and_end_with_the_same_weights(store: ClipStore, tmp_path: Path) -> None:
    """Two gloo ranks: in every epoch each sees half of the 8 clips, the halves are disjoint and cover
    the set, and both ranks end with identical weights (gradients were averaged)."""
    script = tmp_path / "ddp_run.py"  # a file: Lightning starts rank 1 by running the same script again
    script.write_text(_DDP_RUN)
    (tmp_path / "seen").mkdir()
    overrides = [*TINY, "extractor.batch_size=2", "extractor.epochs=2"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    args = [sys.executable, str(script), str(store.root), str(tmp_path), ";".join(overrides)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    clips = len(store.clips())
    shares = {}
    for rank in (0, 1):
        lines = (tmp_path / "seen" / f"rank{rank}.txt").read_text().split()
        pairs = list(zip(map(int, lines[::2]), map(int, lines[1::2]), strict=True))
        shares[rank] = {epoch: {i for e, i in pairs if e == epoch} for epoch in (0, 1)}
        assert len(pairs) == clips  # 2 epochs x half of the clips each
    for epoch in (0, 1):
        assert len(shares[0][epoch]) == len(shares[1][epoch]) == clips // 2
        assert shares[0][epoch].isdisjoint(shares[1][epoch])
        assert shares[0][epoch] | shares[1][epoch] == set(range(clips))
    assert shares[0][0] != shares[0][1]  # reshuffled between epochs
    digests = [(tmp_path / "seen" / f"digest{rank}.txt").read_text().split() for rank in (0, 1)]
    assert digests[0][0] == digests[1][0]  # the same weights on both ranks


# A throwaway sequence head with hyperparameters of its own (``width``, ``temperature``), in one new module:
# config ``head.options`` must reach its constructor, the model directory and the reloaded model.
EXTRA_HEAD_MODULE = """
import torch
from torch import nn

from deepfake_detect.models.heads import SEQUENCE_HEADS, SequenceHead, check_lengths, masked_mean


@SEQUENCE_HEADS.register("test-tempered-mean")
class TemperedMeanHead(SequenceHead):
    temporal_evidence = "pooled"

    def __init__(self, input_dim: int = 512, width: int = 4, temperature: float = 1.0) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.temperature = temperature
        self.proj = nn.Linear(input_dim, width)
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        check_lengths(x, lengths)
        pooled = masked_mean(x, lengths.to(x.device))
        return self.out(torch.tanh(self.proj(pooled))).squeeze(-1) / self.temperature
"""


@pytest.fixture
def tempered_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Register the head of EXTRA_HEAD_MODULE by importing it from a file in tmp_path; unregister it after."""
    import importlib

    from deepfake_detect.models import SEQUENCE_HEADS

    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "tempered_head.py").write_text(EXTRA_HEAD_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path / "plugin"))
    importlib.import_module("tempered_head")
    yield "test-tempered-mean"
    SEQUENCE_HEADS.unregister("test-tempered-mean")
    sys.modules.pop("tempered_head", None)


def test_a_new_head_with_its_own_hyperparameters_runs_end_to_end(
    store: ClipStore, tmp_path: Path, tempered_head: str
) -> None:
    """``head.options`` -> train-head on a clip store -> model directory -> load -> predict."""
    from typer.testing import CliRunner

    import deepfake_detect.cli.train  # noqa: F401  (registers the commands)
    from deepfake_detect.cli.app import app
    from deepfake_detect.models import load_model_dir
    from deepfake_detect.training import embed_clips, predict_clips

    runner = CliRunner()
    ext, cache, det = tmp_path / "ext", tmp_path / "cache", tmp_path / "det"
    common = ["--no-progress", "--val-fraction", "0.3", "-q"]
    extractor = _cli_args("extractor.epochs=0")  # the embeddings' quality does not matter here
    result = runner.invoke(app, ["train-extractor", str(store.root), str(ext), *extractor, *common])
    assert result.exit_code == 0, result.output
    options = ["--set", f"head.name={tempered_head}", "--set", "head.options={width: 3, temperature: 2.5}"]
    args = [str(store.root), str(det), "-e", str(ext), "--embeddings", str(cache), "--epochs", "2"]
    result = runner.invoke(app, ["train-head", *args, *options, *common])
    assert result.exit_code == 0, result.output

    written = json.loads((det / "model" / "config.json").read_text())
    assert written["head"] == tempered_head
    assert written["head_kwargs"] == {"input_dim": 16, "width": 3, "temperature": 2.5}
    loaded = load_model_dir(det / "model")
    head = loaded.head
    assert head.proj.out_features == 3 and head.temperature == 2.5  # type: ignore[union-attr]
    rows = store.clips()
    digest = json.loads((ext / "extractor.json").read_text())["digest"]
    embeddings = embed_clips(loaded.extractor, store, rows, cache, digest=digest, progress=False)
    probs = predict_clips(head, embeddings, rows)
    assert probs.shape == (len(rows),) and np.all((probs > 0) & (probs < 1))
    # the temperature divides the logit: undoing it by hand moves every probability away from 0.5
    head.temperature = 1.0  # type: ignore[assignment]
    sharper = predict_clips(head, embeddings, rows)
    assert np.all(np.abs(sharper - 0.5) > np.abs(probs - 0.5))


def test_train_head_help_lists_the_registered_heads(tempered_head: str) -> None:
    """The help text reads the registry when it is shown (no hard-coded list): a new head is listed."""
    from typer.testing import CliRunner

    import deepfake_detect.cli.train  # noqa: F401  (registers the commands)
    from deepfake_detect.cli.app import app

    for _ in range(2):  # and again after the first page was shown
        result = CliRunner().invoke(app, ["train-head", "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert f"A sequence head: frame-mlp, lstm, mlp, {tempered_head}" in result.output
    helptext = CliRunner().invoke(app, ["train-head", "--help"], env={"COLUMNS": "200"}).output
    assert "{heads}" not in helptext
