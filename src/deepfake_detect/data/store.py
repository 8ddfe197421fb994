"""The clip store (SPEC §3 'Stores'): face crops as JPEG files plus a manifest, in plain files.

Layout of a store folder ``ROOT``::

    ROOT/crops/<video_key>/t<track>/<frame:06d>.jpg   kept face crops (only frames that are in a clip)
    ROOT/rows/<video_key>.json                        the video's manifest rows; its presence = "done"
    ROOT/manifest.csv                                 all rows, sorted by (video_id, track, clip_index)
    ROOT/store.json                                   the settings the crops were made with
    ROOT/.tmp/<video_key>-<pid>/                      work folders of videos being processed

Rows travel as typed :class:`~deepfake_detect.types.ClipRow`; the store converts them at its boundary
(:func:`row_record` / :func:`parse_row`, and :func:`rows_frame` / :func:`frame_rows` for DataFrames), so the
files keep the manifest's text (space-joined frame indices, 4-decimal timestamps, label -1 unknown).

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
from deepfake_detect.types import ClipRow, Label, VideoRecord, VideoStatus

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
_KEY_COLUMNS = _SORT_COLUMNS  # what names a clip
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


def clip_key(row: ClipRow | Mapping[str, Any]) -> str:
    """Unique name of one clip in a store: ``<video_id>/t<track>/c<clip_index>``."""
    if isinstance(row, ClipRow):
        return f"{row.video_id}/t{row.track}/c{row.clip_index}"
    return f"{row['video_id']}/t{int(row['track'])}/c{int(row['clip_index'])}"


def clip_keys(frame: pd.DataFrame) -> list[str]:
    """:func:`clip_key` of every row of a manifest DataFrame (reads only video_id, track, clip_index)."""
    return [clip_key(record) for record in frame[_KEY_COLUMNS].to_dict("records")]


def crop_dir_for(video_id: str, track: int) -> str:
    """The ``crop_dir`` column of a clip: where its JPEGs live, relative to the store root (posix)."""
    return f"crops/{video_key(video_id)}/t{track}"


def crop_file_name(frame_index: int) -> str:
    return f"{frame_index:06d}.jpg"


def clip_row(
    record: VideoRecord,
    track: int,
    clip_index: int,
    frame_indices: Sequence[int],
    timestamps: Sequence[float],
) -> ClipRow:
    """The manifest row of one ``ok`` clip (timestamps rounded to the manifest's 4 decimals)."""
    return ClipRow(
        **_record_fields(record),
        track=int(track),
        clip_index=int(clip_index),
        frame_indices=tuple(int(i) for i in frame_indices),
        timestamps=tuple(round(float(t), 4) for t in timestamps),
        crop_dir=crop_dir_for(record.video_id, track),
        status=VideoStatus.OK,
        error="",
    )


def failure_row(record: VideoRecord, status: VideoStatus, error: str) -> ClipRow:
    """The single manifest row of a video that produced no clip; ``error`` says why."""
    if status is VideoStatus.OK:
        raise ValueError("a failure row needs a status other than ok")
    status = VideoStatus(status)
    return ClipRow(
        **_record_fields(record),
        track=-1,
        clip_index=-1,
        frame_indices=(),
        timestamps=(),
        crop_dir="",
        status=status,
        error=" ".join(error.split()) or status.value,
    )


def _record_fields(record: VideoRecord) -> dict[str, Any]:
    split = record.split or ""
    return {
        "dataset": record.dataset,
        "video_id": record.video_id,
        "source_id": record.source_id,
        "label": record.label,
        "split": split,
    }


def row_record(row: ClipRow) -> dict[str, Any]:
    """A typed row as the manifest writes it: :data:`MANIFEST_COLUMNS`, frame indices and timestamps
    space-joined, an unknown label as -1 (the inverse of :func:`parse_row`)."""
    return {
        "dataset": row.dataset,
        "video_id": row.video_id,
        "source_id": row.source_id,
        "label": UNKNOWN_LABEL if row.label is None else int(row.label),
        "split": row.split,
        "track": row.track,
        "clip_index": row.clip_index,
        "n_frames": row.n_frames,
        "frame_indices": " ".join(str(i) for i in row.frame_indices),
        "timestamps": " ".join(f"{t:.4f}" for t in row.timestamps),
        "crop_dir": row.crop_dir,
        "status": row.status.value,
        "error": row.error,
    }


def parse_row(record: Mapping[str, Any]) -> ClipRow:
    """A manifest row (a rows-file entry, a DataFrame record or Series) as a typed :class:`ClipRow`."""
    missing = [c for c in MANIFEST_COLUMNS if c not in record]
    if missing:
        raise StoreError(f"{record.get('video_id', '?')}: manifest row lacks columns {missing}")
    label = int(record["label"])
    return ClipRow(
        dataset=str(record["dataset"]),
        video_id=str(record["video_id"]),
        source_id=str(record["source_id"]),
        label=None if label == UNKNOWN_LABEL else Label(label),
        split=str(record["split"]),
        track=int(record["track"]),
        clip_index=int(record["clip_index"]),
        frame_indices=tuple(parse_indices(record["frame_indices"])),
        timestamps=tuple(_parse_floats(record["timestamps"])),
        crop_dir=str(record["crop_dir"]),
        status=VideoStatus(record["status"]),
        error=str(record["error"]),
    )


def frame_rows(frame: pd.DataFrame) -> list[ClipRow]:
    """The rows of a manifest DataFrame (e.g. a selection of :meth:`ClipStore.clips`) as typed rows."""
    return [parse_row(record) for record in frame.to_dict("records")]


def _as_row(row: ClipRow | Mapping[str, Any]) -> ClipRow:
    return row if isinstance(row, ClipRow) else parse_row(row)


def parse_indices(value: Any) -> list[int]:
    """``frame_indices`` of a row (space-separated text or a sequence) as ints."""
    if isinstance(value, str):
        return [int(v) for v in value.split()]
    return [int(v) for v in value]


def _parse_floats(value: Any) -> list[float]:
    if isinstance(value, str):
        return [float(v) for v in value.split()]
    return [float(v) for v in value]


def rows_frame(rows: Iterable[ClipRow]) -> pd.DataFrame:
    """Rows -> a DataFrame with exactly :data:`MANIFEST_COLUMNS`, typed and deterministically sorted."""
    frame = pd.DataFrame([row_record(row) for row in rows], columns=MANIFEST_COLUMNS)
    for column in MANIFEST_COLUMNS:
        frame[column] = frame[column].astype("int64" if column in _INT_COLUMNS else str)
    return frame.sort_values(_SORT_COLUMNS, kind="stable").reset_index(drop=True)


def _check_rows(video_id: str, rows: Sequence[ClipRow]) -> None:
    if not rows:
        raise StoreError(f"{video_id}: a video needs at least one manifest row (a failure row if no clip)")
    for row in rows:
        if row.video_id != video_id:
            raise StoreError(f"row of {row.video_id!r} given for video {video_id!r}")


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

    def read_rows(self, video_id: str) -> list[ClipRow] | None:
        """The rows written for ``video_id``, or None if the video is not done."""
        path = self.rows_path(video_id)
        return self._load_rows_file(path) if path.is_file() else None

    def done_video_ids(self) -> set[str]:
        return {rows[0].video_id for rows in self._iter_rows_files()}

    def write_video_rows(
        self, video_id: str, rows: Sequence[ClipRow], crops_dir_tmp: Path | None = None
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
        payload = {"format": _ROWS_FORMAT, "video_id": video_id, "rows": [row_record(r) for r in rows]}
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
    def _load_rows_file(self, path: Path) -> list[ClipRow]:
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            rows = [parse_row(record) for record in payload["rows"]]
            _check_rows(payload["video_id"], rows)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"malformed rows file {path}: {exc}") from None
        return rows

    def _iter_rows_files(self) -> Iterable[list[ClipRow]]:
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
    def clip_paths(self, row: ClipRow | Mapping[str, Any]) -> list[Path]:
        """The JPEG files of one clip, in frame order (``row`` typed, or a manifest record)."""
        row = _as_row(row)
        if row.status is not VideoStatus.OK or not row.crop_dir:
            raise StoreError(f"{row.video_id} has no clip (status {row.status.value}: {row.error})")
        folder = self.root / row.crop_dir
        return [folder / crop_file_name(i) for i in row.frame_indices]

    def read_clip(self, row: ClipRow | Mapping[str, Any]) -> np.ndarray:
        """The crops of one clip stacked as uint8 (T, H, W, 3)."""
        from PIL import Image

        row = _as_row(row)
        images = []
        for path in self.clip_paths(row):
            try:
                with Image.open(path) as image:
                    images.append(np.asarray(image.convert("RGB")))
            except FileNotFoundError:
                raise StoreError(f"crop {path} of clip {clip_key(row)} is missing") from None
        return np.stack(images)  # (T, H, W, 3)
