"""FaceForensics++ (folders define the labels), SPEC §5.

Reals: ``original_sequences/{youtube,actors}/<compression>/videos/*.mp4``; fakes:
``manipulated_sequences/<method>/<compression>/videos/*.mp4`` for the methods below.

- video_id: ``original/<stem>`` (youtube), ``actors/<stem>`` (DeepFakeDetection originals),
  ``<method>/<stem>`` (fakes); unique across methods.
- source_id, in FF++'s own numbering: a youtube original ``720`` -> ``720``; a fake ``720_672`` (target
  720 with the face of 672) -> ``720``, the original it was made from; an actors original
  ``01__meeting_serious`` -> itself; a DeepFakeDetection fake ``01_02__meeting_serious__YVGY8LOK`` ->
  ``01__meeting_serious``. Youtube ids are digits and actors ids contain ``__``, so they never collide.
- split: official ``{train,val,test}.json`` in the root or ``root/splits``, lists of ``["720", "672"]``
  pairs; a pair covers the originals 720 and 672 and the fakes 720_672 and 672_720 of every method.
  Videos in no list (e.g. all of DeepFakeDetection) get split None.

Options: ``compression`` (raw, c23 (default) or c40); ``methods`` (names, or one comma-separated
string; default: every method present). Actors originals are listed only when DeepFakeDetection is
selected (always, when ``methods`` is not given).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from deepfake_detect.data.layouts.base import (
    LAYOUTS,
    DatasetError,
    DatasetListing,
    finish,
    read_json_any,
    require_dir,
    scan_videos,
    summarize,
)
from deepfake_detect.types import Label, VideoRecord

METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter", "DeepFakeDetection")
COMPRESSIONS = ("raw", "c23", "c40")
SPLITS = ("train", "val", "test")
_DFD = "DeepFakeDetection"
_PAIR_FAKE = re.compile(r"(\d+)_(\d+)")
_DFD_FAKE = re.compile(r"(\d+)_(\d+)__(.+)__([A-Za-z0-9]+)")


def _select_methods(root: Path, compression: str, methods: Sequence[str] | str | None) -> list[str]:
    present = [m for m in METHODS if (root / "manipulated_sequences" / m / compression / "videos").is_dir()]
    if methods is None:
        return present
    wanted = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    for method in wanted:
        if method not in METHODS:
            raise DatasetError(f"unknown FF++ method {method!r} (known: {', '.join(METHODS)})")
        if method not in present:
            raise DatasetError(
                f"FF++ method {method!r} has no folder manipulated_sequences/{method}/{compression}/videos "
                f"under {root}"
            )
    return [m for m in METHODS if m in wanted]


def read_official_splits(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(original id -> split, fake stem ``a_b`` -> split) from the official pair lists, if any."""
    originals: dict[str, str] = {}
    fakes: dict[str, str] = {}
    for name in SPLITS:
        candidates = (root / f"{name}.json", root / "splits" / f"{name}.json")
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            continue
        for a, b in _read_pairs(path):
            for video, table in ((a, originals), (b, originals), (f"{a}_{b}", fakes), (f"{b}_{a}", fakes)):
                if table.get(video, name) != name:
                    other = table[video]
                    raise DatasetError(f"{path}: video {video} is in both {other}.json and {name}.json")
                table[video] = name
    return originals, fakes


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    data = read_json_any(path)
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON list of [id, id] pairs, got {type(data).__name__}")
    pairs = []
    for index, item in enumerate(data):
        ok = isinstance(item, list) and len(item) == 2 and all(isinstance(v, str | int) for v in item)
        if not ok:
            raise DatasetError(f'{path}: item {index} should be a pair like ["720", "672"], got {item!r}')
        pairs.append((str(item[0]), str(item[1])))
    return pairs


def _fake_source(method: str, stem: str) -> str | None:
    if method == _DFD:
        match = _DFD_FAKE.fullmatch(stem)
        return f"{match.group(1)}__{match.group(3)}" if match else None
    match = _PAIR_FAKE.fullmatch(stem)
    return match.group(1) if match else None


@LAYOUTS.register("ffpp")
def load_ffpp(
    root: Path, *, compression: str = "c23", methods: Sequence[str] | str | None = None
) -> DatasetListing:
    """FaceForensics++ originals and manipulations at one compression, with the official splits."""
    require_dir(root, "ffpp")
    if compression not in COMPRESSIONS:
        raise DatasetError(f"unknown FF++ compression {compression!r} (known: {', '.join(COMPRESSIONS)})")
    if not any((root / top).is_dir() for top in ("original_sequences", "manipulated_sequences")):
        raise DatasetError(f"{root} has neither original_sequences/ nor manipulated_sequences/ (FF++ layout)")
    selected = _select_methods(root, compression, methods)
    original_splits, fake_splits = read_official_splits(root)
    with_actors = methods is None or _DFD in selected
    records = _originals(root, compression, original_splits, with_actors)
    unreadable = []
    for method in selected:
        for path in scan_videos(root / "manipulated_sequences" / method / compression / "videos"):
            video_id = f"{method}/{path.stem}"
            source = _fake_source(method, path.stem)
            if source is None:
                unreadable.append(video_id)
            split = fake_splits.get(path.stem) if method != _DFD else None
            extra = {"compression": compression, "method": method}
            records.append(VideoRecord(video_id, path, Label.FAKE, source or video_id, "ffpp", split, extra))
    if not records:
        raise DatasetError(f"no FF++ videos at compression {compression!r} under {root}")
    warnings = summarize(unreadable, "fake names do not follow FF++ naming; their source_id is their own id")
    return finish(records, [], warnings)


def _originals(root: Path, compression: str, splits: dict[str, str], with_actors: bool) -> list[VideoRecord]:
    records = []
    for kind, prefix in (("youtube", "original"), ("actors", "actors")):
        if kind == "actors" and not with_actors:
            continue
        for path in scan_videos(root / "original_sequences" / kind / compression / "videos"):
            split = splits.get(path.stem) if kind == "youtube" else None
            extra = {"compression": compression, "method": prefix}
            video_id = f"{prefix}/{path.stem}"
            records.append(VideoRecord(video_id, path, Label.REAL, path.stem, "ffpp", split, extra))
    return records
