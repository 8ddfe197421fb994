"""The clip store (SPEC §3 'Stores'): face crops as JPEG files plus a manifest, in plain files.

Layout of a store folder ``ROOT``::

    ROOT/crops/<video_key>/t<track>/<frame:06d>.jpg   kept face crops (only frames that are in a clip)
    ROOT/rows/<video_key>.json                        the video's manifest rows; its presence = "done"
    ROOT/manifest.csv                                 all rows, sorted by (video_id, track, clip_index)
    ROOT/store.json                                   the settings the crops were made with
    ROOT/.tmp/<video_key>-<pid>/                      work folders of videos being processed

Every write is atomic (a temp file or folder in the same file system, then a rename), so a store that was
killed at any moment holds only finished videos plus leftovers that :meth:`ClipStore.remove_stale` deletes.
Several processes (e.g. the shards of a SLURM array) may share one store if they handle disjoint videos.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepfake_detect.infra.files import write_text as atomic_write_text
from deepfake_detect.types import VideoRecord, VideoStatus

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS: list[str] = [
    "dataset",
    "video_id",
    "source_id",
    "label",
    "split",
    "track",
    "clip_index",
    "n_frames",
    "frame_indices",
    "timestamps",
    "crop_dir",
    "status",
    "error",
]
_INT_COLUMNS = ("label", "track", "clip_index", "n_frames")
_SORT_COLUMNS = ["video_id", "track", "clip_index"]
_ROWS_FORMAT = 1
_SAFE_KEY = re.compile(r"[A-Za-z0-9._-]+")
_MAX_KEY_LEN = 150
UNKNOWN_LABEL = -1


class StoreError(RuntimeError):
    """A clip store that cannot be used as asked (wrong settings, missing crops, malformed rows)."""


def video_key(video_id: str) -> str:
    """A file-system-safe, collision-free name for ``video_id`` ('/' becomes '__').

    Ids with other unsafe characters, a leading dot or extreme length get those characters replaced and
    a CRC32 of the original id appended, so that two different ids never share a key.
    """
    key = video_id.replace("/", "__")
    if _SAFE_KEY.fullmatch(key) and not key.startswith(".") and len(key) <= _MAX_KEY_LEN:
        return key
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", key).lstrip(".")[:_MAX_KEY_LEN]
    return f"{cleaned}~{zlib.crc32(video_id.encode('utf-8')):08x}"


def clip_key(row: Mapping[str, Any]) -> str:
    """Unique name of one clip in a store: ``<video_id>/t<track>/c<clip_index>``."""
    return f"{row['video_id']}/t{int(row['track'])}/c{int(row['clip_index'])}"


def crop_dir_for(video_id: str, track: int) -> str:
    """The ``crop_dir`` column of a clip: where its JPEGs live, relative to the store root (posix)."""
    return f"crops/{video_key(video_id)}/t{track}"


def crop_file_name(frame_index: int) -> str:
    return f"{frame_index:06d}.jpg"


def _record_columns(record: VideoRecord) -> dict[str, Any]:
    return {
        "dataset": record.dataset,
        "video_id": record.video_id,
        "source_id": record.source_id,
        "label": UNKNOWN_LABEL if record.label is None else int(record.label),
        "split": record.split or "",
    }


def clip_row(
    record: VideoRecord,
    track: int,
    clip_index: int,
    frame_indices: Sequence[int],
    timestamps: Sequence[float],
) -> dict[str, Any]:
    """The manifest row of one ``ok`` clip."""
    return {
        **_record_columns(record),
        "track": int(track),
        "clip_index": int(clip_index),
        "n_frames": len(frame_indices),
        "frame_indices": " ".join(str(int(i)) for i in frame_indices),
        "timestamps": " ".join(f"{t:.4f}" for t in timestamps),
        "crop_dir": crop_dir_for(record.video_id, track),
        "status": VideoStatus.OK.value,
        "error": "",
    }


def failure_row(record: VideoRecord, status: VideoStatus, error: str) -> dict[str, Any]:
    """The single manifest row of a video that produced no clip; ``error`` says why."""
    if status is VideoStatus.OK:
        raise ValueError("a failure row needs a status other than ok")
    return {
        **_record_columns(record),
        "track": -1,
        "clip_index": -1,
        "n_frames": 0,
        "frame_indices": "",
        "timestamps": "",
        "crop_dir": "",
        "status": VideoStatus(status).value,
        "error": " ".join(error.split()) or status.value,
    }


def parse_indices(value: Any) -> list[int]:
    """``frame_indices`` of a row (space-separated text or a sequence) as ints."""
    if isinstance(value, str):
        return [int(v) for v in value.split()]
    return [int(v) for v in value]


def rows_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows -> a DataFrame with exactly :data:`MANIFEST_COLUMNS`, typed and deterministically sorted."""
    frame = pd.DataFrame(list(rows), columns=MANIFEST_COLUMNS)
    for column in MANIFEST_COLUMNS:
        frame[column] = frame[column].astype("int64" if column in _INT_COLUMNS else str)
    return frame.sort_values(_SORT_COLUMNS, kind="stable").reset_index(drop=True)


def _check_rows(video_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        raise StoreError(f"{video_id}: a video needs at least one manifest row (a failure row if no clip)")
    for row in rows:
        missing = [c for c in MANIFEST_COLUMNS if c not in row]
        if missing:
            raise StoreError(f"{video_id}: manifest row lacks columns {missing}")
        if row["video_id"] != video_id:
            raise StoreError(f"row of {row['video_id']!r} given for video {video_id!r}")


class ClipStore:
    """A folder of face-crop clips and their manifest (see the module docstring for the layout)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.crops_root = self.root / "crops"
        self.rows_root = self.root / "rows"
        self.tmp_root = self.root / ".tmp"
        self.manifest_path = self.root / "manifest.csv"
        self.settings_path = self.root / "store.json"

    def __repr__(self) -> str:
        return f"ClipStore({str(self.root)!r})"

    # -- per-video files -------------------------------------------------------------------------
    def rows_path(self, video_id: str) -> Path:
        return self.rows_root / f"{video_key(video_id)}.json"

    def crops_path(self, video_id: str) -> Path:
        return self.crops_root / video_key(video_id)

    def work_dir(self, video_id: str, pid: int | None = None) -> Path:
        """A fresh, empty temp folder for one video's crops (``.tmp/<video_key>-<pid>``)."""
        path = self.tmp_root / f"{video_key(video_id)}-{os.getpid() if pid is None else pid}"
        if path.exists():
            shutil.rmtree(path)
        for _ in range(3):  # another process may remove an empty .tmp between the two mkdirs
            try:
                path.mkdir(parents=True)
                break
            except FileNotFoundError:
                continue
        return path

    def is_done(self, video_id: str) -> bool:
        return self.rows_path(video_id).is_file()

    def read_rows(self, video_id: str) -> list[dict[str, Any]] | None:
        """The rows written for ``video_id``, or None if the video is not done."""
        path = self.rows_path(video_id)
        return self._load_rows_file(path) if path.is_file() else None

    def done_video_ids(self) -> set[str]:
        return {rows[0]["video_id"] for rows in self._iter_rows_files()}

    def write_video_rows(
        self, video_id: str, rows: Sequence[Mapping[str, Any]], crops_dir_tmp: Path | None = None
    ) -> None:
        """Publish one finished video: move its crops into place, then write its rows file (the done marker).

        ``crops_dir_tmp`` (from :meth:`work_dir`, same file system) is renamed to ``crops/<video_key>``;
        an empty one is removed. A video that was done before is replaced.
        """
        _check_rows(video_id, rows)
        rows_path = self.rows_path(video_id)
        rows_path.unlink(missing_ok=True)  # not done while its crops change
        final = self.crops_path(video_id)
        if final.exists():
            shutil.rmtree(final)
        if crops_dir_tmp is not None and crops_dir_tmp.exists():
            if any(crops_dir_tmp.iterdir()):
                final.parent.mkdir(parents=True, exist_ok=True)
                os.rename(crops_dir_tmp, final)
            else:
                crops_dir_tmp.rmdir()
        payload = {"format": _ROWS_FORMAT, "video_id": video_id, "rows": [dict(r) for r in rows]}
        atomic_write_text(rows_path, json.dumps(payload, sort_keys=True) + "\n")

    def remove_stale(self, video_ids: Iterable[str] | None = None) -> int:
        """Delete work folders and crop folders without a rows file; returns how many were removed.

        With ``video_ids`` only those videos' leftovers are touched (other shards may be working in the
        same store); with None, every leftover is.
        """
        keys = None if video_ids is None else {video_key(v) for v in video_ids}
        stale: list[Path] = []
        if self.tmp_root.is_dir():
            for path in self.tmp_root.iterdir():
                key, _, pid = path.name.rpartition("-")
                if keys is None or (pid.isdigit() and key in keys):
                    stale.append(path)
        if self.crops_root.is_dir():
            for path in self.crops_root.iterdir():
                rows_file = self.rows_root / f"{path.name}.json"
                if (keys is None or path.name in keys) and not rows_file.is_file():
                    stale.append(path)
        for path in stale:
            logger.debug("removing unfinished %s", path)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if self.tmp_root.is_dir() and not any(self.tmp_root.iterdir()):
            with contextlib.suppress(OSError):  # another process may just have started a video there
                self.tmp_root.rmdir()
        return len(stale)

    # -- settings ----------------------------------------------------------------------------------
    def ensure_settings(self, settings: Mapping[str, Any]) -> None:
        """Record the settings the crops are made with; refuse to mix in crops made with other settings."""
        wanted = json.loads(json.dumps(dict(settings), sort_keys=True))
        if self.settings_path.is_file():
            existing = json.loads(self.settings_path.read_text(encoding="utf-8")).get("settings", {})
            differ = sorted(k for k in set(existing) | set(wanted) if existing.get(k) != wanted.get(k))
            if differ:
                details = ", ".join(f"{k}: {existing.get(k)!r} -> {wanted.get(k)!r}" for k in differ)
                raise StoreError(
                    f"the store {self.root} was made with other settings ({details}); "
                    "use a new output folder or the settings it was made with"
                )
            return
        atomic_write_text(
            self.settings_path, json.dumps({"settings": wanted}, indent=2, sort_keys=True) + "\n"
        )

    # -- manifest ----------------------------------------------------------------------------------
    def _load_rows_file(self, path: Path) -> list[dict[str, Any]]:
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            rows: list[dict[str, Any]] = payload["rows"]
            _check_rows(payload["video_id"], rows)
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"malformed rows file {path}: {exc}") from None
        return rows

    def _iter_rows_files(self) -> Iterable[list[dict[str, Any]]]:
        if not self.rows_root.is_dir():
            return
        for path in sorted(self.rows_root.glob("*.json")):
            yield self._load_rows_file(path)

    def _rebuild(self) -> pd.DataFrame:
        return rows_frame(row for rows in self._iter_rows_files() for row in rows)

    def _manifest_is_fresh(self) -> bool:
        if not self.manifest_path.is_file():
            return False
        written = self.manifest_path.stat().st_mtime_ns
        count = 0
        if self.rows_root.is_dir():
            for entry in os.scandir(self.rows_root):
                if entry.name.endswith(".json"):
                    count += 1
                    if entry.stat().st_mtime_ns > written:
                        return False
        return count == self._manifest_video_count()

    def _manifest_video_count(self) -> int:
        ids = pd.read_csv(self.manifest_path, usecols=["video_id"], dtype=str, keep_default_na=False)
        return int(ids["video_id"].nunique())

    def _read_manifest_csv(self) -> pd.DataFrame:
        dtypes = {c: ("int64" if c in _INT_COLUMNS else str) for c in MANIFEST_COLUMNS}
        frame = pd.read_csv(self.manifest_path, dtype=dtypes, keep_default_na=False, na_values=[])
        if list(frame.columns) != MANIFEST_COLUMNS:
            raise StoreError(
                f"{self.manifest_path} has columns {list(frame.columns)}, not {MANIFEST_COLUMNS}"
            )
        return frame

    def manifest(self) -> pd.DataFrame:
        """Every row (clips and failures): manifest.csv, or rebuilt from rows/ when it is absent or stale."""
        if self._manifest_is_fresh():
            return self._read_manifest_csv()
        return self._rebuild()

    def clips(self) -> pd.DataFrame:
        """The ``ok`` rows only (one per clip), index reset."""
        frame = self.manifest()
        return frame[frame["status"] == VideoStatus.OK.value].reset_index(drop=True)

    def consolidate(self) -> Path:
        """Rebuild manifest.csv from every rows file (sorted by video_id, track, clip_index); atomic."""
        frame = self._rebuild()
        atomic_write_text(self.manifest_path, frame.to_csv(index=False, lineterminator="\n"))
        return self.manifest_path

    # -- clips ---------------------------------------------------------------------------------------
    def clip_paths(self, row: Mapping[str, Any]) -> list[Path]:
        """The JPEG files of one clip, in frame order."""
        if row["status"] != VideoStatus.OK.value or not row["crop_dir"]:
            raise StoreError(f"{row['video_id']} has no clip (status {row['status']}: {row['error']})")
        folder = self.root / str(row["crop_dir"])
        return [folder / crop_file_name(i) for i in parse_indices(row["frame_indices"])]

    def read_clip(self, row: Mapping[str, Any]) -> np.ndarray:
        """The crops of one clip stacked as uint8 (T, H, W, 3)."""
        from PIL import Image

        images = []
        for path in self.clip_paths(row):
            try:
                with Image.open(path) as image:
                    images.append(np.asarray(image.convert("RGB")))
            except FileNotFoundError:
                raise StoreError(f"crop {path} of clip {clip_key(row)} is missing") from None
        return np.stack(images)  # (T, H, W, 3)
