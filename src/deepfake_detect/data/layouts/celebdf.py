"""Celeb-DF v2 (folders define the labels), SPEC §5.

``Celeb-real/`` and ``YouTube-real/`` hold reals, ``Celeb-synthesis/`` fakes. ``List_of_testing_videos.txt``
has lines ``1 YouTube-real/00170.mp4`` where **1 = real, 0 = fake** (the opposite of DFDC); each listed
label is cross-checked with its folder and a disagreement is a DatasetError naming the line. Listed videos
get split "test", the others "train" (all None, with a warning, when the list is absent).

video_id = ``<folder>/<stem>``. A fake ``id0_id16_0000`` is video 0000 of identity id0 with the face of
id16, so its source_id is ``id0_0000``, the stem of the Celeb-real video it was made from; a real's
source_id is its own stem.
"""

from __future__ import annotations

import re
from pathlib import Path

from deepfake_detect.data.layouts.base import (
    LAYOUTS,
    DatasetError,
    DatasetListing,
    finish,
    parse_label,
    require_dir,
    scan_videos,
    summarize,
)
from deepfake_detect.types import Label, VideoRecord

FOLDERS = {"Celeb-real": Label.REAL, "YouTube-real": Label.REAL, "Celeb-synthesis": Label.FAKE}
TEST_LIST = "List_of_testing_videos.txt"
_LIST_LABELS = {"1": Label.REAL, "0": Label.FAKE}
_FAKE_NAME = re.compile(r"(id\d+)_(id\d+)_(\d+)")


def read_test_list(path: Path) -> list[str]:
    """The listed paths (``folder/name.mp4``), each label checked against its folder."""
    listed = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        fields = line.split()
        if len(fields) != 2:
            raise DatasetError(f"{where}: expected '<1 real|0 fake> <folder>/<video>', got {line.strip()!r}")
        label = parse_label(fields[0], _LIST_LABELS, where)
        relpath = fields[1].replace("\\", "/").strip("/")
        folder = relpath.split("/", 1)[0]
        if folder not in FOLDERS or "/" not in relpath:
            raise DatasetError(f"{where}: {relpath!r} is not in one of {', '.join(FOLDERS)}")
        if FOLDERS[folder] != label:
            raise DatasetError(
                f"{where}: label {fields[0]} means {label.name.lower()} (Celeb-DF: 1 = real, 0 = fake) "
                f"but {folder}/ holds {FOLDERS[folder].name.lower()} videos"
            )
        listed.append(relpath)
    return listed


def _source(folder: str, stem: str) -> str | None:
    if FOLDERS[folder] == Label.REAL:
        return stem
    match = _FAKE_NAME.fullmatch(stem)
    return f"{match.group(1)}_{match.group(3)}" if match else None


@LAYOUTS.register("celebdf")
def load_celebdf(root: Path) -> DatasetListing:
    """Celeb-DF v2: labels from the folders, the test split from List_of_testing_videos.txt."""
    require_dir(root, "celebdf")
    if not any((root / folder).is_dir() for folder in FOLDERS):
        raise DatasetError(f"{root} has none of the Celeb-DF folders {', '.join(FOLDERS)}")
    warnings = []
    list_path = root / TEST_LIST
    has_list = list_path.is_file()
    if not has_list:
        warnings.append(f"{TEST_LIST} not found in {root}: no video has a split")
    test = set(read_test_list(list_path)) if has_list else set()
    records, unreadable = [], []
    for folder, label in FOLDERS.items():
        for path in scan_videos(root / folder):
            video_id = f"{folder}/{path.stem}"
            source = _source(folder, path.stem)
            if source is None:
                unreadable.append(video_id)
            split = ("test" if f"{folder}/{path.name}" in test else "train") if has_list else None
            extra = {"folder": folder}
            records.append(VideoRecord(video_id, path, label, source or video_id, "celebdf", split, extra))
    missing = sorted(relpath for relpath in test if not (root / relpath).is_file())
    warnings += summarize(unreadable, "Celeb-synthesis names do not read as idA_idB_NNNN; source_id = own id")
    return finish(records, missing, warnings)
