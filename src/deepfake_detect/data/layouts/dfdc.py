"""DFDC train (``metadata.json`` per part) and DFDC public test (``labels.csv``), SPEC §5.

``dfdc``: any number of ``dfdc_train_part_N/metadata.json`` under the root (one or two folder levels
deep, N zero-padded or not), and/or a ``metadata.json`` directly in the root (what the synthetic
generator writes). Each is a dict keyed by file name::

    {"owxbbpjpch.mp4": {"label": "FAKE", "split": "train", "original": "wynotylpnm.mp4"},
     "vpmyeepbep.mp4": {"label": "REAL", "split": "train"}}

video_id = file stem (DFDC names are unique across parts; a stem seen in two parts is warned about and
all copies get their part folder as prefix, ``dfdc_train_part_3/abc``; the root's name for a
``metadata.json`` in the root). source_id = stem of
``original`` for a fake, the own stem for a real (also for a prefixed duplicate, so groups never split).

``dfdc-test``: ``labels.csv`` with header ``filename,label``, 1 = FAKE, 0 = REAL; videos next to it or
in a ``videos/`` sub-folder. No originals are known, so source_id = own id.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepfake_detect.data.layouts.base import (
    LAYOUTS,
    DatasetError,
    DatasetListing,
    entry_dict,
    finish,
    parse_label,
    read_csv_rows,
    read_json_object,
    relative,
    require_dir,
    require_file,
    summarize,
)
from deepfake_detect.types import Label, VideoRecord

_PART = re.compile(r"dfdc_train_part_\d+")
_DFDC_LABELS = {"fake": Label.FAKE, "real": Label.REAL}
_TEST_LABELS = {"1": Label.FAKE, "0": Label.REAL}


@dataclass(frozen=True)
class _Entry:
    metadata: Path
    key: str
    stem: str
    info: dict[str, Any]


def find_metadata_files(root: Path) -> list[Path]:
    """``root/metadata.json`` and every ``dfdc_train_part_N/metadata.json`` one or two levels down."""
    found = [root / "metadata.json"] if (root / "metadata.json").is_file() else []
    for pattern in ("*/metadata.json", "*/*/metadata.json"):
        found.extend(p for p in root.glob(pattern) if _PART.fullmatch(p.parent.name) and p.is_file())
    return sorted(set(found), key=_part_order)


def _part_order(path: Path) -> tuple[int, str]:
    digits = re.findall(r"\d+", path.parent.name)
    return (int(digits[-1]) if digits else -1, path.as_posix())


@LAYOUTS.register("dfdc")
def load_dfdc(root: Path) -> DatasetListing:
    """DFDC train parts (and the synthetic generator's output): labels, splits and originals."""
    require_dir(root, "dfdc")
    files = find_metadata_files(root)
    if not files:
        raise DatasetError(
            f"no DFDC metadata under {root}: expected dfdc_train_part_N/metadata.json or metadata.json"
        )
    entries = [entry for path in files for entry in _read_metadata(path)]
    counts = Counter(entry.stem for entry in entries)
    duplicates = sorted(stem for stem, n in counts.items() if n > 1)
    warnings = summarize(duplicates, "file names appear in several parts; their ids get the part as prefix")
    records, missing, no_original = [], [], []
    for entry in entries:
        record = _dfdc_record(root, entry, prefixed=counts[entry.stem] > 1)
        if record.label == Label.FAKE and "original" not in record.extra:
            no_original.append(record.video_id)
        if record.path.is_file():
            records.append(record)
        else:
            missing.append(relative(record.path, root))
    warnings += summarize(no_original, "fakes name no original; their source_id is their own id")
    return finish(records, missing, warnings)


def _read_metadata(path: Path) -> list[_Entry]:
    data = read_json_object(path)
    entries = []
    for key, value in data.items():
        info = entry_dict(value, path, key)
        if "label" not in info:
            raise DatasetError(f"{path}: entry {key!r} has no 'label'")
        stem = Path(key).stem
        if not stem:
            raise DatasetError(f"{path}: entry {key!r} is not a file name")
        entries.append(_Entry(metadata=path, key=key, stem=stem, info=info))
    return entries


def _dfdc_record(root: Path, entry: _Entry, prefixed: bool) -> VideoRecord:
    where = f"{entry.metadata} entry {entry.key!r}"
    label = parse_label(entry.info["label"], _DFDC_LABELS, where)
    part = relative(entry.metadata.parent, root)
    at_root = part == "."
    video_id = f"{root.name if at_root else part}/{entry.stem}" if prefixed else entry.stem
    original = entry.info.get("original")
    if original is not None and not isinstance(original, str):
        raise DatasetError(f"{where}: 'original' should be a file name, got {original!r}")
    source_id = Path(original).stem if label == Label.FAKE and original else entry.stem
    split = entry.info.get("split")
    extra = {} if at_root else {"part": part}
    if label == Label.FAKE and original:
        extra["original"] = original
    return VideoRecord(
        video_id=video_id,
        path=entry.metadata.parent / entry.key,
        label=label,
        source_id=source_id,
        dataset="dfdc",
        split=str(split) if split is not None else None,
        extra=extra,
    )


@LAYOUTS.register("dfdc-test")
def load_dfdc_test(root: Path) -> DatasetListing:
    """DFDC public test set: ``labels.csv`` (filename,label with 1 = FAKE, 0 = REAL)."""
    require_dir(root, "dfdc-test")
    labels = root / "labels.csv"
    require_file(labels, "DFDC test label file")
    records, missing = [], []
    for line, row in read_csv_rows(labels, ["filename", "label"], []):
        where = f"{labels} line {line}"
        filename = row["filename"]
        if not filename:
            raise DatasetError(f"{where}: empty filename")
        label = parse_label(row["label"], _TEST_LABELS, where)
        path = _locate(root, filename)
        stem = Path(filename).stem
        record = VideoRecord(stem, path, label, stem, "dfdc-test", split="test")
        if path.is_file():
            records.append(record)
        else:
            missing.append(relative(path, root))
    return finish(records, missing, [])


def _locate(root: Path, filename: str) -> Path:
    """The video next to labels.csv, else in ``videos/`` (the first place if neither holds it)."""
    for folder in (root, root / "videos"):
        if (folder / filename).is_file():
            return folder / filename
    return root / filename
