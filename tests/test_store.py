"""The clip store: keys, atomic publishing, manifest determinism and staleness, reading clips back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepfake_detect.data.store import (
    MANIFEST_COLUMNS,
    ClipStore,
    StoreError,
    atomic_write_text,
    clip_key,
    clip_row,
    failure_row,
    frame_rows,
    video_key,
)
from deepfake_detect.types import ClipRow, Label, VideoRecord, VideoStatus


def _record(video_id: str, label: Label | None = Label.FAKE, split: str | None = "train") -> VideoRecord:
    return VideoRecord(
        video_id, Path(f"/data/{video_id}"), label, source_id=f"src-{video_id}", dataset="toy", split=split
    )


def _face_crops(astronaut: np.ndarray, n: int, size: int = 64) -> list[np.ndarray]:
    """n different (size, size, 3) crops of the astronaut's face, shifted by 2 px each."""
    crops = []
    for k in range(n):
        patch = astronaut[80 + 2 * k : 240 + 2 * k, 150 + 2 * k : 310 + 2 * k]
        crops.append(np.asarray(Image.fromarray(patch).resize((size, size), Image.BILINEAR)))
    return crops


def _publish_video(
    store: ClipStore, record: VideoRecord, tracks: dict[int, list[int]], astronaut: np.ndarray, clip_len: int
) -> list[ClipRow]:
    """Write crops for ``tracks`` (track -> frame indices) into a work dir, then publish clips of clip_len."""
    work = store.work_dir(record.video_id)
    rows = []
    for track, frames in tracks.items():
        for frame, crop in zip(frames, _face_crops(astronaut, len(frames)), strict=True):
            path = work / f"t{track}" / f"{frame:06d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(crop).save(path, quality=95)
        for index in range(len(frames) // clip_len):
            clip = frames[index * clip_len : (index + 1) * clip_len]
            rows.append(clip_row(record, track, index, clip, [f / 25.0 for f in clip]))
    store.write_video_rows(record.video_id, rows, work)
    return rows


def test_video_key_is_safe_and_collision_free() -> None:
    assert video_key("owxbbpjpch.mp4") == "owxbbpjpch.mp4"
    assert video_key("method_A/video/x.mp4") == "method_A__video__x.mp4"
    odd = ["a b.mp4", "a_b.mp4", "../x", "é.mp4", "x" * 300, "x" * 301]
    keys = [video_key(v) for v in odd]
    assert len(set(keys)) == len(odd)
    for key in keys:
        assert "/" not in key and not key.startswith(".") and len(key) < 200
        assert key.isascii()


def test_clip_key_format() -> None:
    row = {"video_id": "a/b.mp4", "track": 2, "clip_index": 3}
    assert clip_key(row) == "a/b.mp4/t2/c3"


def test_round_trip_reads_the_crops_back(tmp_path: Path, astronaut_rgb: np.ndarray) -> None:
    store = ClipStore(tmp_path / "store")
    record = _record("dir/v1.mp4")
    rows = _publish_video(store, record, {0: [0, 1, 2, 3, 4, 5], 1: [2, 4, 6]}, astronaut_rgb, clip_len=3)
    assert [clip_key(r) for r in rows] == ["dir/v1.mp4/t0/c0", "dir/v1.mp4/t0/c1", "dir/v1.mp4/t1/c0"]
    assert store.is_done("dir/v1.mp4") and store.done_video_ids() == {"dir/v1.mp4"}
    assert not store.tmp_root.exists() or not any(store.tmp_root.iterdir())  # the work dir was moved
    clips = store.clips()
    assert len(clips) == 3
    second = store.read_clip(clips.iloc[1])
    assert second.shape == (3, 64, 64, 3) and second.dtype == np.uint8
    expected = np.stack(_face_crops(astronaut_rgb, 6)[3:6]).astype(float)
    assert np.abs(second.astype(float) - expected).mean() < 3.0  # JPEG q95 of the same crops
    other = store.read_clip(clips.iloc[2])  # track 1, frames 2 4 6 = the 1st..3rd crops of that track
    assert np.abs(other.astype(float) - np.stack(_face_crops(astronaut_rgb, 3))).mean() < 3.0
    assert (tmp_path / "store" / "crops" / "dir__v1.mp4" / "t1" / "000006.jpg").is_file()


def test_manifest_columns_types_and_values(tmp_path: Path, astronaut_rgb: np.ndarray) -> None:
    store = ClipStore(tmp_path)
    _publish_video(store, _record("00012", Label.REAL, None), {0: [0, 2, 4, 6]}, astronaut_rgb, clip_len=2)
    store.write_video_rows(
        "0007", [failure_row(_record("0007", None), VideoStatus.NO_FACE, "no face\nat all")]
    )
    store.consolidate()
    frame = store.manifest()
    assert list(frame.columns) == MANIFEST_COLUMNS
    assert frame["video_id"].tolist() == ["00012", "00012", "0007"]  # ids stay text, sorted as text
    assert frame["label"].tolist() == [0, 0, -1]
    assert frame["track"].tolist() == [0, 0, -1] and frame["clip_index"].tolist() == [0, 1, -1]
    assert frame["split"].tolist() == ["", "", "train"]
    assert frame.loc[1, "frame_indices"] == "4 6" and frame.loc[1, "timestamps"] == "0.1600 0.2400"
    assert frame.loc[2, "status"] == "no_face" and frame.loc[2, "error"] == "no face at all"
    assert frame.loc[0, "crop_dir"] == "crops/00012/t0"
    assert frame["n_frames"].tolist() == [2, 2, 0]
    assert len(store.clips()) == 2


def test_typed_rows_cross_the_store_boundary_unchanged(tmp_path: Path) -> None:
    store = ClipStore(tmp_path)
    clips = [
        clip_row(_record("dir/v1.mp4"), 0, 0, [0, 1], [0.0, 1 / 30]),
        clip_row(_record("dir/v1.mp4"), 2, 0, (5, 7), [5 / 30, 7 / 30]),
    ]
    failure = failure_row(_record("0007", None, None), VideoStatus.NO_FACE, "no face\nat all")
    store.write_video_rows("dir/v1.mp4", clips)
    store.write_video_rows("0007", [failure])
    assert clips[1].frame_indices == (5, 7) and clips[1].timestamps == (0.1667, 0.2333)
    assert failure.label is None and failure.n_frames == 0 and failure.error == "no face at all"
    assert store.read_rows("dir/v1.mp4") == clips and store.read_rows("0007") == [failure]
    assert frame_rows(store.manifest()) == [failure, *clips]  # rebuilt from the rows files
    text = store.consolidate().read_text(encoding="utf-8")
    assert text == (  # the manifest's text as it was before rows were typed
        "dataset,video_id,source_id,label,split,track,clip_index,n_frames,frame_indices,timestamps,"
        "crop_dir,status,error\n"
        "toy,0007,src-0007,-1,,-1,-1,0,,,,no_face,no face at all\n"
        "toy,dir/v1.mp4,src-dir/v1.mp4,1,train,0,0,2,0 1,0.0000 0.0333,crops/dir__v1.mp4/t0,ok,\n"
        "toy,dir/v1.mp4,src-dir/v1.mp4,1,train,2,0,2,5 7,0.1667 0.2333,crops/dir__v1.mp4/t2,ok,\n"
    )
    assert frame_rows(store.manifest()) == [failure, *clips]  # read back from manifest.csv


def test_manifest_is_deterministic_whatever_the_order(tmp_path: Path, astronaut_rgb: np.ndarray) -> None:
    videos = {f"v{i}": {0: list(range(4)), 1: [1, 2]} for i in range(5)}
    contents = []
    for name, order in (("a", sorted(videos)), ("b", sorted(videos, reverse=True))):
        store = ClipStore(tmp_path / name)
        for video_id in order:
            _publish_video(store, _record(video_id), videos[video_id], astronaut_rgb, clip_len=2)
        contents.append(store.consolidate().read_bytes())
    assert contents[0] == contents[1]
    frame = pd.read_csv(tmp_path / "a" / "manifest.csv", dtype=str)
    keys = list(
        zip(frame["video_id"], frame["track"].astype(int), frame["clip_index"].astype(int), strict=True)
    )
    assert keys == sorted(keys) and len(keys) == 15
    store = ClipStore(tmp_path / "a")
    from_csv = store.manifest()
    store.manifest_path.unlink()
    pd.testing.assert_frame_equal(from_csv, store.manifest())  # the csv reads back as the rows rebuild


def test_manifest_rebuilds_when_stale(tmp_path: Path, astronaut_rgb: np.ndarray) -> None:
    store = ClipStore(tmp_path)
    _publish_video(store, _record("a"), {0: [0, 1]}, astronaut_rgb, clip_len=2)
    store.consolidate()
    _publish_video(store, _record("b"), {0: [0, 1]}, astronaut_rgb, clip_len=2)
    assert store.manifest()["video_id"].tolist() == ["a", "b"]  # manifest.csv lacks b: rebuilt
    store.consolidate()
    os.utime(store.rows_path("b"), ns=(1, 1))  # an old rows file, but counts match: the csv is used
    assert store.manifest()["video_id"].tolist() == ["a", "b"]
    store.rows_path("b").unlink()
    assert store.manifest()["video_id"].tolist() == ["a"]


def test_remove_stale_deletes_unfinished_work_only(tmp_path: Path, astronaut_rgb: np.ndarray) -> None:
    store = ClipStore(tmp_path)
    _publish_video(store, _record("done"), {0: [0, 1]}, astronaut_rgb, clip_len=2)
    half = store.work_dir("half", pid=4242)
    (half / "t0").mkdir()
    (half / "t0" / "000000.jpg").write_bytes(b"partial")
    orphan = store.crops_path("renamed-but-no-rows")  # killed between the rename and the rows file
    orphan.mkdir(parents=True)
    other = store.work_dir("other-shard", pid=17)
    assert store.remove_stale(["half", "renamed-but-no-rows", "done"]) == 2
    assert not half.exists() and not orphan.exists() and other.exists()
    assert store.is_done("done") and store.crops_path("done").is_dir()
    assert store.remove_stale() == 1 and not store.tmp_root.exists()


def test_republishing_replaces_the_old_crops(tmp_path: Path, astronaut_rgb: np.ndarray) -> None:
    store = ClipStore(tmp_path)
    _publish_video(store, _record("v"), {0: [0, 1, 2, 3]}, astronaut_rgb, clip_len=2)
    _publish_video(store, _record("v"), {3: [5, 6]}, astronaut_rgb, clip_len=2)
    assert sorted(p.name for p in store.crops_path("v").iterdir()) == ["t3"]
    assert [clip_key(r) for r in store.read_rows("v") or []] == ["v/t3/c0"]


def test_failure_without_crops_and_clear_errors(tmp_path: Path) -> None:
    store = ClipStore(tmp_path)
    work = store.work_dir("bad")
    row = failure_row(_record("bad"), VideoStatus.UNDECODABLE, "not a media file")
    store.write_video_rows("bad", [row], work)
    assert not work.exists() and not store.crops_path("bad").exists()
    with pytest.raises(StoreError, match="undecodable: not a media file"):
        store.read_clip(store.manifest().iloc[0])
    with pytest.raises(StoreError, match="at least one"):
        store.write_video_rows("x", [])
    with pytest.raises(StoreError, match="given for video"):
        store.write_video_rows("x", [row])
    with pytest.raises(ValueError, match="other than ok"):
        failure_row(_record("bad"), VideoStatus.OK, "")


def test_missing_crop_and_malformed_rows_are_named(tmp_path: Path, astronaut_rgb: np.ndarray) -> None:
    store = ClipStore(tmp_path)
    _publish_video(store, _record("v"), {0: [0, 1]}, astronaut_rgb, clip_len=2)
    (store.crops_path("v") / "t0" / "000001.jpg").unlink()
    with pytest.raises(StoreError, match=r"000001\.jpg of clip v/t0/c0 is missing"):
        store.read_clip(store.clips().iloc[0])
    store.rows_path("w").write_text("{not json", encoding="utf-8")
    with pytest.raises(StoreError, match=r"malformed rows file .*w\.json"):
        store.manifest()


def test_atomic_write_keeps_old_content_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "rows.json"
    atomic_write_text(target, "old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["rows.json"]


def test_settings_mismatch_is_refused(tmp_path: Path) -> None:
    store = ClipStore(tmp_path)
    store.ensure_settings({"clip_len": 8, "frame_stride": 1})
    store.ensure_settings({"frame_stride": 1, "clip_len": 8})  # same settings: fine
    with pytest.raises(StoreError, match=r"clip_len: 8 -> 100"):
        store.ensure_settings({"clip_len": 100, "frame_stride": 1})
    assert json.loads(store.settings_path.read_text())["settings"]["clip_len"] == 8
