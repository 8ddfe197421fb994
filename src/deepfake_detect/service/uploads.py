"""Receive an upload by reading the request body as it streams in: size-checked, written straight to disk.

The body is never held in memory: each chunk the server hands over is counted (the limit holds whatever
``Content-Length`` claims, or when there is none, e.g. a chunked body), then written to a private temporary
file. The file keeps the suffix of the client's file name (``.mp4``; none for a raw body) in a folder of
its own, so FFmpeg guesses the format as it does for ``deepfake-detect detect`` on the same file (a fixed
suffix such as ``.bin`` would pick a demuxer that takes any bytes). A ``multipart/form-data`` body is
parsed incrementally with ``python_multipart`` and the first part
that carries a file name becomes the video; any other content type is taken as the raw video bytes.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.requests import Request

_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f]")
SPOOLED_STEM = "received-video"  # distinctive: messages that name the file get the client's name instead
_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")


class UploadError(Exception):
    """An upload the service refuses; ``http_status`` and ``status`` go into the error response."""

    http_status = 422
    status = "bad_upload"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class UploadTooLargeError(UploadError):
    http_status = 413
    status = "too_large"


@dataclass(frozen=True)
class SpooledUpload:
    """A received video on disk (the caller's to :meth:`discard`) and the name the client gave it."""

    path: Path
    filename: str
    size: int

    def discard(self) -> None:
        """Delete the file and its private folder."""
        shutil.rmtree(self.path.parent, ignore_errors=True)


def safe_filename(name: str | None) -> str:
    """The last path component of a client-supplied name, without control characters (for messages)."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = _UNSAFE_NAME.sub("", base).strip()[:200]
    return base or "upload"


def upload_suffix(filename: str) -> str:
    """The client's file-name suffix, lower case, when it is a plain one (``.mp4``); else ``""``."""
    suffix = Path(filename).suffix.lower()
    return suffix if _SUFFIX.fullmatch(suffix) else ""


def _too_large(limit: int) -> UploadTooLargeError:
    return UploadTooLargeError(f"the upload is larger than this server's limit of {limit / 2**20:g} MB")


class _RawSink:
    """The whole body is the video."""

    def __init__(self, out: BinaryIO) -> None:
        self._out, self.size, self.filename = out, 0, "upload"

    def write(self, chunk: bytes) -> None:
        self._out.write(chunk)
        self.size += len(chunk)

    def finish(self) -> None:
        return None


class _MultipartSink:
    """Streams the first file part of a multipart body into ``out``; other parts are skipped."""

    def __init__(self, boundary: bytes, out: BinaryIO) -> None:
        self._out, self.size = out, 0
        self.filename: str | None = None
        self._field, self._value = b"", b""
        self._headers: dict[bytes, bytes] = {}
        self._in_file = self._file_done = self._ended = False
        callbacks = {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }
        self._parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]

    def write(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise UploadError(f"the multipart form is malformed: {exc}") from None

    def finish(self) -> None:
        if not self._ended:
            raise UploadError("the upload ended before the multipart form was complete")
        if not self._file_done:
            raise UploadError("the form holds no file: send the video as the form field 'file'")

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        if b"filename" in options and not self._file_done:
            self._in_file = True
            self.filename = options[b"filename"].decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._out.write(data[start:end])
            self.size += end - start

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file, self._file_done = False, True

    def _end(self) -> None:
        self._ended = True


def _sink_for(content_type: str, out: BinaryIO) -> _RawSink | _MultipartSink:
    kind, options = parse_options_header(content_type)
    if kind == b"application/x-www-form-urlencoded":
        raise UploadError("send the video as the multipart form field 'file', or as the raw request body")
    if kind != b"multipart/form-data":
        return _RawSink(out)
    boundary = options.get(b"boundary")
    if not boundary:
        raise UploadError("the multipart form has no boundary in its Content-Type header")
    return _MultipartSink(boundary, out)


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


async def receive_upload(request: Request, directory: Path, limit: int) -> SpooledUpload:
    """Stream the body of ``request`` into a new file in ``directory``; stop with 413 past ``limit`` bytes.

    Raises :class:`UploadTooLargeError` as soon as the running byte count passes the limit (or at once when
    ``Content-Length`` already does) and :class:`UploadError` for a form without a file. On any error,
    including a client that disconnects, the partial file is removed.
    """
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise _too_large(limit)
    folder = Path(tempfile.mkdtemp(dir=directory, prefix="upload-"))
    path = folder / "upload.part"
    try:
        with path.open("xb") as out:
            sink = _sink_for(request.headers.get("content-type", ""), out)
            received = 0
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise _too_large(limit)
                sink.write(chunk)  # page-cache write of one small chunk: not worth a thread hop
            sink.finish()
        filename = safe_filename(sink.filename)
        video = path.rename(folder / f"{SPOOLED_STEM}{upload_suffix(filename)}")
        return SpooledUpload(video, filename, sink.size)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)
        raise
