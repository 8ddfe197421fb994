"""DFDC preview (``dataset.json`` keyed by relative path), SPEC §5.

``{"method_A/.../x.mp4": {"label": "fake", "set": "train"}}``; unknown keys are ignored, the split is
``set``. video_id = relative path without suffix, "/" replaced by "__" (unique).

Source ids (our reading of the preview's file names; labels never come from names): a real is
``original_videos/<id>/<id>_<scene>_<n>.mp4`` and its source_id is its stem ``<id>_<scene>_<n>``. A fake
is ``method_X/<target>/<target>_<scene>/<face>_<target>_<scene>_<n>.mp4``: the target's clip
``<target>_<scene>_<n>`` with the face of identity ``<face>`` swapped in, so its source_id is
``<target>_<scene>_<n>`` (the real it was made from). When that clip is not among the listed reals but
the other order (first id + rest) is, the other order is used; a name with fewer than four ``_`` parts
keeps its own id as source_id, with a warning.
"""

from __future__ import annotations

from pathlib import Path

from deepfake_detect.data.layouts.base import (
    LAYOUTS,
    DatasetError,
    DatasetListing,
    entry_dict,
    finish,
    parse_label,
    read_json_object,
    require_dir,
    require_file,
    strip_suffix,
    summarize,
)
from deepfake_detect.types import Label, VideoRecord

_LABELS = {"fake": Label.FAKE, "real": Label.REAL}


def preview_video_id(key: str) -> str:
    """``method_A/1/1_A/2_1_A_001.mp4`` -> ``method_A__1__1_A__2_1_A_001``."""
    return strip_suffix(key.replace("\\", "/").strip("/")).replace("/", "__")


def fake_source(stem: str, real_stems: set[str]) -> str | None:
    """The stem of the real a fake named ``<face>_<target>_<scene>_<n>`` was made from (None: unreadable)."""
    parts = stem.split("_")
    if len(parts) < 4 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    target_first = "_".join(parts[1:])
    face_first = "_".join([parts[0], *parts[2:]])
    if target_first not in real_stems and face_first in real_stems:
        return face_first
    return target_first


@LAYOUTS.register("dfdc-preview")
def load_dfdc_preview(root: Path) -> DatasetListing:
    """DFDC preview set: labels and splits from dataset.json, source ids from the file names."""
    require_dir(root, "dfdc-preview")
    path = root / "dataset.json"
    require_file(path, "DFDC preview label file")
    entries = []
    for key, value in read_json_object(path).items():
        info = entry_dict(value, path, key)
        if "label" not in info:
            raise DatasetError(f"{path}: entry {key!r} has no 'label'")
        label = parse_label(info["label"], _LABELS, f"{path} entry {key!r}")
        entries.append((key, label, info.get("set")))
    real_stems = {Path(key).stem for key, label, _ in entries if label == Label.REAL}
    records, missing, unreadable = [], [], []
    for key, label, split in entries:
        video_id = preview_video_id(key)
        stem = Path(key).stem
        source = stem if label == Label.REAL else fake_source(stem, real_stems)
        if source is None:
            unreadable.append(video_id)
        record = VideoRecord(
            video_id=video_id,
            path=root / key,
            label=label,
            source_id=source or video_id,
            dataset="dfdc-preview",
            split=str(split) if split is not None else None,
            extra={"method": key.replace("\\", "/").split("/", 1)[0]},
        )
        if record.path.is_file():
            records.append(record)
        else:
            missing.append(key)
    message = "fake names do not read as <face>_<target>_<scene>_<n>; source_id = own id"
    warnings = summarize(unreadable, message)
    return finish(records, missing, warnings)
