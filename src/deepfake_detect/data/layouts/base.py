"""Shared pieces of the dataset layouts: the registry, the listing type, errors and file readers.

A layout is a function ``fn(root: Path, *, option=...) -> DatasetListing`` registered in ``LAYOUTS``.
It reads a dataset exactly as SPEC §5 describes it and never guesses labels from path fragments,
except where the dataset itself defines labels by folder.

``source_id`` is a grouping key for leakage-free splits: a real video and every fake made from it
share one ``source_id``, written in the dataset's own naming (e.g. the original's file stem).
"""

from __future__ import annotations

import csv
import inspect
import itertools
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deepfake_detect.infra.media import VIDEO_SUFFIXES
from deepfake_detect.registry import Registry
from deepfake_detect.types import Label, VideoRecord

logger = logging.getLogger(__name__)


_EXAMPLES = 3


class DatasetError(ValueError):
    """A dataset root or label file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class DatasetListing:
    """What a layout found: the records (sorted by video_id), listed-but-absent videos, and warnings.

    ``missing`` holds the paths (posix, relative to the dataset root; for ``csv`` to the table's
    folder) of videos that a label file lists but that are not on disk; reported, not fatal.
    """

    records: list[VideoRecord]
    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def count(self, label: Label) -> int:
        return sum(1 for record in self.records if record.label == label)


LayoutFn = Callable[..., DatasetListing]
# Every module of this package is imported on the first lookup, so a layout's module registers itself.
LAYOUTS: Registry[LayoutFn] = Registry("dataset layout", package="deepfake_detect.data.layouts")


def load_dataset(layout: str, root: Path, *, name: str | None = None, **options: Any) -> DatasetListing:
    """List the videos of the dataset at ``root`` read with ``layout`` (see ``LAYOUTS.names()``).

    ``name`` overrides the ``dataset`` field of every record (default: the layout's name);
    other ``options`` go to the layout (e.g. ``compression="c40"`` for ffpp).
    """
    loader = LAYOUTS.get(layout)
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset root {root} does not exist (layout {layout!r})")
    _check_options(layout, loader, options)
    listing: DatasetListing = loader(root, **options)
    if name is not None:
        listing = replace(listing, records=[replace(r, dataset=name) for r in listing.records])
    for warning in listing.warnings:
        logger.warning("%s: %s", layout, warning)
    if listing.missing:
        logger.warning(
            "%s: %d listed videos are missing under %s (e.g. %s)",
            layout,
            len(listing.missing),
            root,
            ", ".join(listing.missing[:_EXAMPLES]),
        )
    return listing


def _check_options(layout: str, loader: LayoutFn, options: dict[str, Any]) -> None:
    params = inspect.signature(loader).parameters
    known = [p.name for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(known))
    if unknown:
        listed = ", ".join(known) if known else "none"
        raise DatasetError(f"layout {layout!r} has no option {unknown[0]!r} (its options: {listed})")


def finish(records: Iterable[VideoRecord], missing: Iterable[str], warnings: Iterable[str]) -> DatasetListing:
    """Sort records by video_id (determinism) and refuse duplicate ids."""
    ordered = sorted(records, key=lambda r: r.video_id)
    for before, after in itertools.pairwise(ordered):
        if before.video_id == after.video_id:
            raise DatasetError(f"two videos have the id {after.video_id!r}: {before.path} and {after.path}")
    return DatasetListing(records=ordered, missing=sorted(missing), warnings=list(warnings))


def summarize(items: list[str], message: str) -> list[str]:
    """One warning for a family of problems: ``"<n> <message> (e.g. a, b, c)"``; empty if no items."""
    if not items:
        return []
    examples = ", ".join(sorted(items)[:_EXAMPLES])
    return [f"{len(items)} {message} (e.g. {examples})"]


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` in posix form (the path itself if it is not under root)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def require_dir(root: Path, layout: str) -> None:
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} is not a folder (layout {layout!r} needs one)")


def require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise DatasetError(f"{what} {path} not found")


def parse_label(value: object, spellings: dict[str, Label], where: str) -> Label:
    """Read a label with the spellings one dataset uses (case-insensitive); anything else is an error."""
    text = str(value).strip().lower()
    if text not in spellings:
        allowed = "/".join(spellings)
        raise DatasetError(f"{where}: unknown label value {value!r} (expected one of {allowed})")
    return spellings[text]


def read_json_any(path: Path) -> Any:
    """Parse a JSON file; errors name the file and the position."""
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        position = f"line {exc.lineno} column {exc.colno}"
        raise DatasetError(f"{path}: malformed JSON at {position}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason})") from exc


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file whose top level is an object; errors name the file and the position."""
    data = read_json_any(path)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")
    return data


def entry_dict(value: object, path: Path, key: str) -> dict[str, Any]:
    """One entry of a JSON object keyed by file name; it must itself be an object."""
    if not isinstance(value, dict):
        raise DatasetError(f"{path}: entry {key!r} should be a JSON object, got {type(value).__name__}")
    return value


def read_csv_rows(
    path: Path, required: list[str], optional: list[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV file with a header as ``(line number, {column: stripped text})``.

    Column names are matched case-insensitively; a missing required column, a row with the wrong
    number of fields or unreadable CSV (e.g. an unclosed quote) is a DatasetError naming the file and line.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = [column.strip().lower() for column in next(reader, [])]
            absent = [column for column in required if column not in header]
            if absent:
                raise DatasetError(
                    f"{path}: header {','.join(header) or '(empty)'} lacks column {absent[0]!r} "
                    f"(expected {','.join(required)}[,{','.join(optional)}])"
                )
            wanted = set(required) | set(optional)
            for fields in reader:
                if not fields or all(not cell.strip() for cell in fields):
                    continue
                if len(fields) != len(header):
                    raise DatasetError(
                        f"{path} line {reader.line_num}: {len(fields)} fields, the header has {len(header)}"
                    )
                row = {col: cell.strip() for col, cell in zip(header, fields, strict=True) if col in wanted}
                yield reader.line_num, row
        except csv.Error as exc:
            raise DatasetError(f"{path} line {reader.line_num}: malformed CSV: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path} line {reader.line_num}: not UTF-8 text ({exc.reason})") from exc


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".") and path.is_file()


def scan_videos(folder: Path, recursive: bool = False) -> list[Path]:
    """Video files in ``folder`` (sorted); hidden files and temporary files are skipped."""
    if not folder.is_dir():
        return []
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates if is_video_file(p) and not _hidden_below(p, folder))


def _hidden_below(path: Path, folder: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(folder).parts)


def strip_suffix(relpath: str) -> str:
    """``a/b/c.mp4`` -> ``a/b/c`` (only the last suffix)."""
    head, _, tail = relpath.rpartition("/")
    stem = tail.rsplit(".", 1)[0] if "." in tail else tail
    return f"{head}/{stem}" if head else stem
