"""Preprocessing real (tiny) videos into a clip store: statuses, resumability, kills, shards, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner, Result

from deepfake_detect.config import Config, config_from_dict
from deepfake_detect.data.store import ClipStore, row_record
from deepfake_detect.faces import create_face_detector
from deepfake_detect.preprocess import (
    PreprocessError,
    PreprocessProgress,
    parse_shard,
    preprocess_dataset,
    process_video,
    select_records,
    shard_of,
)
from deepfake_detect.types import Label, VideoRecord
from deepfake_detect.video import write_video

W, H, FPS = 160, 120, 25
CLIP_LEN = 8


def _config(detector: str = "haar", **clips: int) -> Config:
    return config_from_dict(
        {
            "faces": {"detector": detector, "crop_size": 64, "min_face_size": 20},
            "clips": {"clip_len": CLIP_LEN, "min_clip_len": 4, **clips},
        }
    )


def _head(astronaut: np.ndarray, side: int = 110) -> np.ndarray:
    return np.asarray(Image.fromarray(astronaut[20:260, 110:350]).resize((side, side), Image.BILINEAR))


def _face_frames(astronaut: np.ndarray, n: int, face_from: int = 0) -> Iterator[np.ndarray]:
    """160x120 frames with the astronaut's head moving a few pixels; no face before ``face_from``."""
    head = _head(astronaut)
    for i in range(n):
        frame = np.full((H, W, 3), 90, np.uint8)
        if i >= face_from:
            x, y = 20 + i % 5, 4 + (i // 2) % 3
            frame[y : y + head.shape[0], x : x + head.shape[1]] = head
        yield frame


def _face_video(path: Path, astronaut: np.ndarray, n: int = 20, face_from: int = 0) -> Path:
    write_video(path, _face_frames(astronaut, n, face_from), fps=FPS, crf=18)
    return path


def _audio_only(path: Path) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = (np.sin(np.arange(16000) / 10.0) * 0.3).astype(np.float32)[None, :]  # (1, N) mono
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 16000, 0, Fraction(1, 16000)
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _record(path: Path, label: Label | None = Label.REAL) -> VideoRecord:
    return VideoRecord(path.name, path, label, source_id=path.stem, dataset="toy", split="train")


# -- pure logic ---------------------------------------------------------------------------------------
def test_parse_shard() -> None:
    assert parse_shard("0/4") == (0, 4) and parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(PreprocessError, match="shard"):
            parse_shard(bad)


def test_shards_partition_the_dataset_stably(tmp_path: Path) -> None:
    records = [_record(tmp_path / f"v{i:03d}.mp4") for i in range(200)]
    shards = [select_records(records, (i, 3)) for i in range(3)]
    ids = [{r.video_id for r in shard} for shard in shards]
    assert set.union(*ids) == {r.video_id for r in records}
    assert sum(len(s) for s in ids) == 200 and all(len(s) > 40 for s in ids)  # disjoint, roughly even
    assert shard_of("abc", 7) == 0x352441C2 % 7  # CRC-32 of b"abc", the same on every machine
    assert zlib.crc32(b"abc") == 0x352441C2
    assert [r.video_id for r in shards[0]] == sorted(ids[0])
    assert [r.video_id for r in select_records(records, (0, 3), limit=5)] == sorted(ids[0])[:5]


def test_select_records_refuses_clashing_ids(tmp_path: Path) -> None:
    a = VideoRecord("x/y.mp4", tmp_path, Label.REAL, "s", "toy")
    with pytest.raises(PreprocessError, match="more than once"):
        select_records([a, a])
    with pytest.raises(PreprocessError, match="same store key"):
        select_records([a, VideoRecord("x__y.mp4", tmp_path, Label.REAL, "s", "toy")])


# -- one video ----------------------------------------------------------------------------------------
def test_process_video_cuts_clips_and_keeps_only_their_crops(
    tmp_path: Path, astronaut_rgb: np.ndarray, mtcnn_detector: object
) -> None:
    video = _face_video(tmp_path / "face.mp4", astronaut_rgb, n=20)
    work = tmp_path / "work"
    work.mkdir()
    config = _config("mtcnn")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 threads on 2 shared, busy cores are many times slower
    try:
        typed = process_video(_record(video, Label.FAKE), config, mtcnn_detector, work_dir=work)  # type: ignore[arg-type]
    finally:
        torch.set_num_threads(threads)
    rows = [row_record(r) for r in typed]  # as the manifest writes them
    assert [(r["status"], r["track"], r["clip_index"]) for r in rows] == [("ok", 0, 0), ("ok", 0, 1)]
    assert rows[0]["frame_indices"] == " ".join(str(i) for i in range(8))
    assert rows[1]["frame_indices"] == " ".join(str(i) for i in range(8, 16))
    assert rows[1]["timestamps"].split()[0] == "0.3200"  # frame 8 at 25 fps
    assert rows[0]["label"] == 1 and rows[0]["n_frames"] == 8 and rows[0]["crop_dir"] == "crops/face.mp4/t0"
    kept = sorted(p.name for p in (work / "t0").iterdir())
    assert kept == [f"{i:06d}.jpg" for i in range(16)]  # frames 16..19 are in no clip: deleted
    crop = np.asarray(Image.open(work / "t0" / "000000.jpg"))
    assert crop.shape == (64, 64, 3)


def test_process_video_with_stride_and_statuses(tmp_path: Path, astronaut_rgb: np.ndarray) -> None:
    detector = create_face_detector(_config().faces)
    video = _face_video(tmp_path / "face.mp4", astronaut_rgb, n=20)
    rows = [row_record(r) for r in process_video(_record(video), _config(frame_stride=2), detector)]
    assert [r["frame_indices"] for r in rows] == [" ".join(str(i) for i in range(0, 16, 2))]

    short = _face_video(tmp_path / "short.mp4", astronaut_rgb, n=6)
    (row,) = [row_record(r) for r in process_video(_record(short), _config(), detector)]
    assert row["status"] == "too_short" and "longest constant-interval run is 6 frames" in row["error"]

    late = _face_video(tmp_path / "late.mp4", astronaut_rgb, n=20, face_from=13)  # 7 face frames < 8
    assert process_video(_record(late), _config(), detector)[0].status == "too_short"

    empty = tmp_path / "empty.mp4"
    write_video(empty, (np.full((H, W, 3), 90, np.uint8) for _ in range(10)), fps=FPS)
    (row,) = [row_record(r) for r in process_video(_record(empty), _config(), detector)]
    assert row["status"] == "no_face" and "10 decoded frames" in row["error"]


# -- whole runs -----------------------------------------------------------------------------------------
def _bad_corpus(root: Path, astronaut: np.ndarray) -> dict[str, str]:
    """Files of every kind of trouble -> the status each must get."""
    root.mkdir(parents=True, exist_ok=True)
    _face_video(root / "good.mp4", astronaut, n=20)
    good = (root / "good.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(good[: len(good) // 2])
    (root / "zero.mp4").write_bytes(b"")
    (root / "random.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    _audio_only(root / "audio.mp4")
    write_video(root / "noface.mp4", (np.full((H, W, 3), 90, np.uint8) for _ in range(12)), fps=FPS)
    _face_video(root / "short.mp4", astronaut, n=5)
    Image.fromarray(astronaut).save(root / "image.mp4", format="PNG")
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n{root / 'good.mp4'}\n#EXT-X-ENDLIST\n"
    (root / "playlist.m3u8").write_text(playlist)
    return {
        "good.mp4": "ok",
        "truncated.mp4": "undecodable",
        "zero.mp4": "undecodable",
        "random.mp4": "undecodable",
        "audio.mp4": "no_video_stream",
        "noface.mp4": "no_face",
        "short.mp4": "too_short",
        "image.mp4": "unsupported_format",
        "playlist.m3u8": "unsupported_format",  # names good.mp4: followed, it would give crops
        "missing.mp4": "not_found",
    }


def test_bad_files_get_clear_statuses_and_a_rerun_skips(tmp_path: Path, astronaut_rgb: np.ndarray) -> None:
    expected = _bad_corpus(tmp_path / "data", astronaut_rgb)
    records = [_record(tmp_path / "data" / name) for name in expected]
    seen: list[PreprocessProgress] = []
    summary = preprocess_dataset(records, tmp_path / "out", _config(), workers=2, progress=seen.append)
    manifest = ClipStore(tmp_path / "out").manifest()
    statuses = dict(zip(manifest["video_id"], manifest["status"], strict=False))
    assert statuses == expected
    failed = manifest[manifest["status"] != "ok"]
    assert (failed["error"].str.len() > 10).all()
    assert summary.processed == 10 and summary.skipped == 0 and summary.clips == 2
    assert summary.status_counts["undecodable"] == 3 and sum(summary.status_counts.values()) == 10
    assert summary.status_counts["unsupported_format"] == 2
    assert seen[0].done == 0 and seen[-1].done == 10 and seen[-1].failures == 9 and seen[-1].clips == 2
    assert not (tmp_path / "out" / ".tmp").exists()
    assert sorted(p.name for p in (tmp_path / "out" / "crops").iterdir()) == ["good.mp4"]

    rows_files = sorted((tmp_path / "out" / "rows").iterdir())
    stamps = [p.stat().st_mtime_ns for p in rows_files]
    before = (tmp_path / "out" / "manifest.csv").read_bytes()
    again = preprocess_dataset(records, tmp_path / "out", _config(), workers=1)
    assert again.processed == 0 and again.skipped == 10 and again.status_counts == summary.status_counts
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "out" / "rows").iterdir())] == stamps
    assert (tmp_path / "out" / "manifest.csv").read_bytes() == before


def test_a_worker_timeout_is_a_failure_row(tmp_path: Path, astronaut_rgb: np.ndarray) -> None:
    records = [_record(_face_video(tmp_path / f"{name}.mp4", astronaut_rgb, n=60)) for name in "ab"]
    config = _config()
    config.preprocess.timeout_s = 0.001  # every video runs longer: its worker is killed and replaced
    summary = preprocess_dataset(records, tmp_path / "out", config)
    manifest = ClipStore(tmp_path / "out").manifest()
    assert manifest["status"].tolist() == ["undecodable", "undecodable"]
    assert manifest["error"].str.startswith("worker timeout: no result within 0.001 s").all()
    assert summary.status_counts == {"undecodable": 2}
    assert not (tmp_path / "out" / ".tmp").exists() and not (tmp_path / "out" / "crops").exists()


def test_a_store_refuses_other_settings(tmp_path: Path, astronaut_rgb: np.ndarray) -> None:
    records = [_record(_face_video(tmp_path / "a.mp4", astronaut_rgb, n=8))]
    preprocess_dataset(records, tmp_path / "out", _config())
    with pytest.raises(Exception, match="clip_len: 8 -> 4"):
        preprocess_dataset(records, tmp_path / "out", _config(clip_len=4))


# -- the command line -------------------------------------------------------------------------------------
def _folder_dataset(root: Path, astronaut: np.ndarray, n: int = 6) -> Path:
    for i in range(n):
        _face_video(root / ("real" if i % 2 else "fake") / f"v{i}.mp4", astronaut, n=20 + 4 * (i % 3))
    return root


def _cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "deepfake_detect.cli.app", "preprocess", *map(str, args)]


_CLI_OPTIONS = ("--layout", "folder", "--workers", "1", "--clip-len", "8", "--set", "faces.detector=haar")


def _run_cli(*args: str | Path) -> Result:
    """The preprocess command in this process (the worker processes are real)."""
    import deepfake_detect.cli.preprocess  # noqa: F401  (registers the command on ``app``)
    from deepfake_detect.cli.app import app

    argv = [str(a) for a in args]
    argv.insert(0, "preprocess")  # the app is always a command group
    return CliRunner().invoke(app, argv)


def test_cli_runs_reports_and_rejects_bad_input(tmp_path: Path, astronaut_rgb: np.ndarray) -> None:
    root = _folder_dataset(tmp_path / "data", astronaut_rgb, n=2)
    done = _run_cli(root, tmp_path / "out", *_CLI_OPTIONS)
    assert done.exit_code == 0, done.output
    assert "manifest:" in done.output and "ok" in done.output and "clips: 5" in done.output
    assert len(ClipStore(tmp_path / "out").clips()) == 5  # 20 and 24 frames -> 2 + 3 clips
    bad = _run_cli(root, tmp_path / "o2", "--layout", "folder", "--shard", "5/2")
    assert bad.exit_code == 1 and "shard 5/2" in bad.output and not (tmp_path / "o2").exists()
    bad = _run_cli(root, tmp_path / "o3", "--layout", "folder", "--set", "clips.clip_len=abc")
    assert bad.exit_code == 2 and "clips.clip_len" in bad.output
    bad = _run_cli(root, tmp_path / "o4", "--layout", "nosuch")
    assert bad.exit_code == 1 and "nosuch" in bad.output
    # layout options reach the layout (folder has none, so any option is refused by name)
    bad = _run_cli(
        root, tmp_path / "o5", "--layout", "folder", "--set", "data.layout_options.compression=c40"
    )
    assert bad.exit_code == 1 and "compression" in bad.output
    assert not isinstance(bad.exception, Exception) or isinstance(bad.exception, SystemExit)


@pytest.mark.slow
def test_killed_and_rerun_equals_an_uninterrupted_run(tmp_path: Path, astronaut_rgb: np.ndarray) -> None:
    root = _folder_dataset(tmp_path / "data", astronaut_rgb)
    clean = _run_cli(root, tmp_path / "clean", *_CLI_OPTIONS)
    assert clean.exit_code == 0, clean.output

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(root, out, *_CLI_OPTIONS), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while not (out / "rows").is_dir() or not any((out / "rows").glob("*.json")):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(list((out / "rows").glob("*.json")))
    assert n_done < 6, "killed too late to test anything"
    time.sleep(1.0)  # let an orphaned worker notice that its parent is gone

    rerun = subprocess.run(_cli(root, out, *_CLI_OPTIONS), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"done before: {n_done}" in rerun.stdout
    assert (out / "manifest.csv").read_bytes() == (tmp_path / "clean" / "manifest.csv").read_bytes()
    assert not (out / ".tmp").exists()
    for name in ("clean", "killed"):
        frame = pd.read_csv(tmp_path / name / "manifest.csv")
        assert len(frame) == 16 and (frame["status"] == "ok").all()  # 20, 24, 28 frames -> 2, 3, 3 clips
    assert _crop_bytes(out) == _crop_bytes(tmp_path / "clean")  # the same JPEGs, byte for byte


def _crop_bytes(out: Path) -> dict[Path, bytes]:
    crops = {path.relative_to(out): path.read_bytes() for path in (out / "crops").rglob("*.jpg")}
    assert crops, f"no crops under {out}"
    return crops


def test_two_shards_fill_one_store_without_touching_each_others_work(
    tmp_path: Path, astronaut_rgb: np.ndarray
) -> None:
    names = ["v0", "clip0", "v1", "clip1"]  # CRC-32 mod 2: the v* go to shard 0, the clip* to shard 1
    paths = [
        _face_video(tmp_path / "data" / f"{name}.mp4", astronaut_rgb, n=12 + 4 * i)
        for i, name in enumerate(names)
    ]
    records = [_record(path) for path in paths]
    by_shard = [[r for r in records if shard_of(r.video_id, 2) == i] for i in range(2)]
    assert all(by_shard), "both shards need a video"
    whole = preprocess_dataset(records, tmp_path / "whole", _config())
    shared = ClipStore(tmp_path / "shared")
    first = preprocess_dataset(records, shared.root, _config(), shard=(0, 2))
    other = by_shard[1][0].video_id  # shard 1 is "still working" on this one: its folder must survive
    in_progress = shared.work_dir(other, pid=999_999)
    (in_progress / "000000.jpg").write_bytes(b"half-written")
    published = _crop_bytes(shared.root)
    second = preprocess_dataset(by_shard[0], shared.root, _config())  # shard 0 again: a rerun
    assert second.processed == 0 and (in_progress / "000000.jpg").read_bytes() == b"half-written"
    assert _crop_bytes(shared.root) == published
    last = preprocess_dataset(records, shared.root, _config(), shard=(1, 2))
    assert (first.processed, last.processed) == (len(by_shard[0]), len(by_shard[1]))
    assert not in_progress.exists()  # shard 1 cleaned up its own leftover
    assert shared.manifest_path.read_bytes() == (tmp_path / "whole" / "manifest.csv").read_bytes()
    assert _crop_bytes(shared.root) == _crop_bytes(tmp_path / "whole")
    assert first.clips + last.clips == whole.clips > 0
