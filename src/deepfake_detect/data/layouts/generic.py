"""Layouts for your own videos: ``folder`` (labels by folder) and ``csv`` (a label table), SPEC §5.

``folder``: ``real/`` and ``fake/`` sub-folders of the root (names matched case-insensitively), searched
recursively for video files (``infra.media.VIDEO_SUFFIXES``, any case, the same set ``detect`` takes from a
folder); hidden files are skipped.
video_id = the path relative to the root without suffix (``fake/sub/clip``); source_id = video_id.

``csv``: a table with header ``path,label[,source_id,split]``. The root is either the CSV file itself or
a folder; for a folder the option ``csv`` names the file (relative to the root unless absolute),
default ``labels.csv``. ``label`` accepts fake/real/1/0 with **1 = fake** (the project's convention, as in
DFDC), case-insensitive. Paths are relative to the CSV's folder. video_id = the path as written, without
suffix; an empty source_id means the video's own id, an empty split means None. Listed-but-absent
videos go to ``missing``.
"""

from __future__ import annotations

from pathlib import Path

from deepfake_detect.data.layouts.base import (
    LAYOUTS,
    DatasetError,
    DatasetListing,
    finish,
    parse_label,
    read_csv_rows,
    relative,
    require_dir,
    require_file,
    scan_videos,
    strip_suffix,
)
from deepfake_detect.types import Label, VideoRecord

_FOLDER_LABELS = {"real": Label.REAL, "fake": Label.FAKE}
_CSV_LABELS = {"fake": Label.FAKE, "real": Label.REAL, "1": Label.FAKE, "0": Label.REAL}


def _label_folders(root: Path) -> dict[Label, Path]:
    found: dict[Label, Path] = {}
    for child in sorted(root.iterdir()):
        label = _FOLDER_LABELS.get(child.name.lower())
        if label is None or not child.is_dir():
            continue
        if label in found:
            kind = label.name.lower()
            raise DatasetError(f"{root} has two {kind} folders: {found[label].name} and {child.name}")
        found[label] = child
    return found


@LAYOUTS.register("folder")
def load_folder(root: Path) -> DatasetListing:
    """Videos under ``root/real`` and ``root/fake`` (recursive); the folder gives the label."""
    require_dir(root, "folder")
    folders = _label_folders(root)
    if not folders:
        raise DatasetError(f"{root} has neither a real/ nor a fake/ sub-folder (folder layout)")
    warnings = [f"{root} has no {label.name.lower()}/ sub-folder" for label in Label if label not in folders]
    records = []
    for label, folder in folders.items():
        for path in scan_videos(folder, recursive=True):
            video_id = strip_suffix(relative(path, root))
            records.append(VideoRecord(video_id, path, label, video_id, "folder"))
    return finish(records, [], warnings)


def _csv_path(root: Path, csv: Path | str | None) -> Path:
    if root.is_file():
        if csv is not None and Path(csv) != root:
            raise DatasetError(f"the root {root} is already a CSV file; option csv={csv} conflicts with it")
        return root
    path = root / (csv if csv is not None else "labels.csv")
    require_file(path, "label table")
    return path


@LAYOUTS.register("csv")
def load_csv(root: Path, *, csv: Path | str | None = None) -> DatasetListing:
    """Videos listed in a CSV table (path,label[,source_id,split]; label 1 = fake)."""
    table = _csv_path(root, csv)
    base = table.parent
    records, missing = [], []
    for line, row in read_csv_rows(table, ["path", "label"], ["source_id", "split"]):
        where = f"{table} line {line}"
        written = row["path"].replace("\\", "/")
        if not written:
            raise DatasetError(f"{where}: empty path")
        label = parse_label(row["label"], _CSV_LABELS, where)
        video_id = strip_suffix(written.removeprefix("./"))
        path = base / written
        record = VideoRecord(
            video_id=video_id,
            path=path,
            label=label,
            source_id=row.get("source_id") or video_id,
            dataset="csv",
            split=row.get("split") or None,
        )
        if path.is_file():
            records.append(record)
        else:
            missing.append(relative(path, base))
    return finish(records, missing, [])
