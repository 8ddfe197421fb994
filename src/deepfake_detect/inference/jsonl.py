"""Batch results as JSON Lines: one VIDEO object per line, appended as each video finishes, resumable.

Each line is written with one ``write`` call, flushed and fsync'ed, so a run killed at any moment leaves
complete lines plus at most one torn last line. :func:`read_jsonl` skips a torn or otherwise unreadable
line and cuts a torn tail off the file, so a rerun appends after the last complete line. Videos are
keyed by ``path`` exactly as given (a rerun must name the files the same way to skip them).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from deepfake_detect.inference.results import VideoResult

logger = logging.getLogger(__name__)


class JsonlError(RuntimeError):
    """The JSONL file cannot be used (not writable, or another run is writing it)."""


@dataclass(frozen=True)
class DoneVideo:
    """What a rerun needs of a video already in the file."""

    path: str
    status: str


def _parse(line: bytes) -> dict[str, Any] | None:
    """The VIDEO object of one complete line, None when it is not one."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if (
        isinstance(value, dict)
        and isinstance(value.get("path"), str)
        and isinstance(value.get("status"), str)
    ):
        return value
    return None


def read_jsonl(path: Path, *, repair: bool = False) -> dict[str, DoneVideo]:
    """The videos in ``path`` by their ``path`` field (the last line wins); {} if it does not exist.

    Unreadable lines are skipped with a warning. With ``repair``, bytes after the last complete line
    (a line torn by a kill) are cut off so that appending goes on cleanly.
    """
    if not path.exists():
        return {}
    done: dict[str, DoneVideo] = {}
    complete_end = 0  # where the last newline-terminated line ends
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            torn = not line.endswith(b"\n")
            video = None if torn else _parse(line)
            if not torn:
                complete_end = handle.tell()
            if video is None:
                logger.warning("%s line %d: %s; ignored", path, number, "torn" if torn else "not a video")
                continue
            done[video["path"]] = DoneVideo(video["path"], video["status"])
    if repair and path.stat().st_size > complete_end:
        with path.open("r+b") as handle:
            handle.truncate(complete_end)
    return done


@contextlib.contextmanager
def jsonl_writer(path: Path) -> Iterator[JsonlWriter]:
    """Append to ``path`` (created with its folder); an exclusive lock refuses a second writer."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("ab")
    except OSError as exc:
        raise JsonlError(f"cannot write {path}: {exc.strerror or exc}") from None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise JsonlError(
                f"{path} is being written by another run; wait for it or pick another file"
            ) from None
        yield JsonlWriter(handle)


class JsonlWriter:
    """Appends VIDEO objects, one durable line each (see :func:`jsonl_writer`)."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle

    def write(self, result: VideoResult) -> None:
        line = json.dumps(result.to_json(), separators=(",", ":")) + "\n"
        self._handle.write(line.encode("utf-8"))
        self._handle.flush()
        os.fsync(self._handle.fileno())
