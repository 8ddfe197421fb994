"""Reading videos with PyAV: one sequential decode pass, frames by stride, rotation applied (SPEC §3).

Memory does not grow with the video's length: frames are decoded, converted and yielded one at a time.
Every failure is a :class:`VideoError` subclass whose ``status`` is the :class:`VideoStatus` to record.

Truncated and corrupt files (decided behaviour):
- When FFmpeg reports an error while demuxing or decoding, :func:`iter_frames` has already yielded every
  frame before it and then raises :class:`DecodeError` whose ``frame_index`` is the decode index of the
  first frame it could not deliver.
- When a file is cut short but FFmpeg sees a plain end of file (Matroska, AVI, WebM cut at any byte), the
  frames before the cut are yielded and iteration ends normally; a shortfall against the frame count the
  container declared is logged as a warning (declared counts are not reliable enough to fail on).
- An MP4/MOV whose index ("moov" atom) is missing, e.g. cut before the index was written, cannot be opened
  at all and raises :class:`NotAMediaFileError`.

Untrusted files (decided behaviour): FFmpeg first guesses the demuxer from the file's own bytes (and its
name), which reads nothing else; a guess outside ``formats`` (default
:data:`~deepfake_detect.config.DEFAULT_CONTAINER_FORMATS`) is refused before the demuxer reads its header,
so an HLS playlist or ffconcat list is never followed, and raises :class:`UnsupportedFormatError` with a
sentence saying what the file is ("an HLS playlist, not a video file"). Only the ``file`` protocol is
allowed, so no URL is ever opened.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
from av.container import InputContainer
from av.stream import Disposition
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from deepfake_detect.config import DEFAULT_CONTAINER_FORMATS
from deepfake_detect.types import Frame, VideoStatus

logger = logging.getLogger(__name__)

# Demuxers that read single still images: FFmpeg opens them as a one-frame "video".
_IMAGE_DEMUXER_SUFFIX = "_pipe"
_IMAGE_DEMUXERS = frozenset({"image2", "tty"})
_FORMAT_NAME = re.compile(r"[a-z0-9_]+")
_EINVAL = 22  # what avformat_open_input returns for a demuxer outside format_whitelist
# What a refused file is, from its first bytes (only used to word the refusal; FFmpeg does the refusing)
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"#EXTM3U", "an HLS playlist"),
    (b"ffconcat", "an ffconcat list"),
    (b"[playlist]", "a PLS playlist"),
    (b"<?xml", "an XML document (e.g. a DASH manifest)"),
    (b"\x89PNG", "a still image (PNG)"),
    (b"\xff\xd8\xff", "a still image (JPEG)"),
    (b"GIF8", "a still image (GIF)"),
    (b"BM", "a still image (BMP)"),
    (b"ID3", "an MP3 audio file"),
    (b"fLaC", "a FLAC audio file"),
)
_RIFF_KINDS = {b"WAVE": "a WAV audio file", b"WEBP": "a still image (WebP)"}


class VideoError(Exception):
    """A video could not be read; ``status`` says why, the message names the file and the problem."""

    status: VideoStatus = VideoStatus.UNDECODABLE

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class VideoNotFoundError(VideoError):
    status = VideoStatus.NOT_FOUND


class NotAMediaFileError(VideoError):
    status = VideoStatus.UNDECODABLE


class NoVideoStreamError(VideoError):
    status = VideoStatus.NO_VIDEO_STREAM


class DecodeError(VideoError):
    """Decoding failed; frames ``0 .. frame_index - 1`` were decoded, ``frame_index`` was not."""

    status = VideoStatus.UNDECODABLE

    def __init__(self, path: Path | str, problem: str, frame_index: int) -> None:
        self.frame_index = frame_index
        super().__init__(path, problem)


class VideoTooLargeError(VideoError):
    status = VideoStatus.TOO_LARGE


class UnsupportedFormatError(VideoError):
    """FFmpeg recognised the file, but as a format outside the allowed containers (not read any further)."""

    status = VideoStatus.UNSUPPORTED_FORMAT


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a video. ``width``/``height`` are after rotation is applied.

    ``rotation`` is the counter-clockwise turn (0, 90, 180 or 270 degrees) applied to decoded pictures
    so that they display upright. ``fps`` is the average frame rate (0.0 when the file gives none);
    ``duration`` (s) and ``frame_count`` are None when the container does not say.
    """

    path: Path
    width: int
    height: int
    fps: float
    duration: float | None
    frame_count: int | None
    rotation: int
    codec: str
    container: str

    def describe(self) -> dict[str, Any]:
        """The fields a result's ``info`` reports about the file (size, rate, duration, rotation, codec)."""
        return {
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "duration": self.duration,
            "rotation": self.rotation,
            "codec": self.codec,
            "container": self.container,
        }

    @property
    def estimated_frames(self) -> int | None:
        """``frame_count`` when declared, else ``round(duration * fps)``, else None."""
        if self.frame_count is not None:
            return self.frame_count
        if self.duration is not None and self.fps > 0:
            return max(1, round(self.duration * self.fps))
        return None


def normalize_rotation(degrees: float) -> int:
    """Map a counter-clockwise angle to the nearest of 0, 90, 180, 270."""
    return (math.floor(degrees / 90.0 + 0.5) % 4) * 90


def rotate_image(image: np.ndarray, rotation: int) -> np.ndarray:
    """Turn an (H, W, C) image counter-clockwise by ``rotation`` degrees (a multiple of 90); contiguous."""
    turns = normalize_rotation(rotation) // 90
    if turns == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=turns))  # (W, H, C) for 90/270


def probe(
    path: Path | str, max_pixels: int | None = None, formats: Collection[str] | None = None
) -> VideoInfo:
    """Read a video's metadata (decodes its first frame to learn the rotation and check it decodes).

    ``formats``: the FFmpeg demuxer names allowed (None: :data:`DEFAULT_CONTAINER_FORMATS`).
    """
    path = Path(path)
    with _open(path, format_allowlist(formats)) as container:
        stream = _video_stream(container, path)
        _check_size(path, stream.codec_context.width, stream.codec_context.height, max_pixels)
        stream.thread_type = "AUTO"
        first = next((frame for _, frame in _decode(container, stream, path)), None)
        if first is None:
            raise DecodeError(path, "the video stream has no decodable frames", frame_index=0)
        _check_size(path, first.width, first.height, max_pixels)
        rotation = _rotation(first, _legacy_rotation(stream))
        width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        return VideoInfo(
            path=path,
            width=width,
            height=height,
            fps=_fps(stream),
            duration=_duration(container, stream),
            frame_count=stream.frames if stream.frames > 0 else None,
            rotation=rotation,
            codec=stream.codec_context.name,
            container=container.format.name,
        )


def iter_frames(
    path: Path | str,
    stride: int = 1,
    max_frames: int | None = None,
    max_pixels: int | None = None,
    formats: Collection[str] | None = None,
) -> Iterator[Frame]:
    """Yield every ``stride``-th frame (decode indices 0, s, 2s, ...) as uint8 RGB, upright, in one pass.

    ``max_frames`` stops after that many yielded frames. Timestamps are seconds from the stream's start
    (presentation time, so variable frame rate is handled); index / fps where a frame has no timestamp.
    Bad arguments raise ValueError at the call; the :class:`VideoError` subclasses are raised when
    iteration starts (file problems) or reaches the failing frame; see the module docstring.
    ``formats``: the FFmpeg demuxer names allowed (None: :data:`DEFAULT_CONTAINER_FORMATS`).
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
    allowed = format_allowlist(formats)
    return _iter_frames(Path(path), stride, max_frames, max_pixels, allowed)


def _iter_frames(
    path: Path, stride: int, max_frames: int | None, max_pixels: int | None, formats: str
) -> Iterator[Frame]:
    with _open(path, formats) as container:
        stream = _video_stream(container, path)
        _check_size(path, stream.codec_context.width, stream.codec_context.height, max_pixels)
        stream.thread_type = "AUTO"
        fps, legacy_rotation = _fps(stream), _legacy_rotation(stream)
        origin = Fraction(stream.start_time or 0) * Fraction(stream.time_base or 0)  # seconds
        kept = decoded = 0
        for index, frame in _decode(container, stream, path):
            decoded = index + 1
            if index % stride:
                continue
            if kept == 0:
                _check_size(path, frame.width, frame.height, max_pixels)
            upright = _rotation(frame, legacy_rotation)
            image = rotate_image(frame.to_ndarray(format="rgb24"), upright)  # (H, W, 3) after rotation
            timestamp = _timestamp(frame, stream, index, origin, fps)
            yield Frame(index=index, timestamp=timestamp, image=image)
            kept += 1
            if max_frames is not None and kept >= max_frames:
                return
        if stream.frames > decoded:
            logger.warning("%s: decoded %d frames, the container declares %d", path, decoded, stream.frames)


def choose_stride(info: VideoInfo, desired_stride: int, min_frames: int) -> int:
    """The largest stride <= ``desired_stride`` that still yields >= ``min_frames`` frames.

    1 when the video is shorter than ``min_frames``; ``desired_stride`` when its length is unknown.
    """
    if desired_stride < 1 or min_frames < 1:
        raise ValueError(f"desired_stride and min_frames must be >= 1, got {desired_stride}, {min_frames}")
    total = info.estimated_frames
    if total is None:
        return desired_stride
    for stride in range(desired_stride, 1, -1):
        if -(-total // stride) >= min_frames:  # ceil(total / stride) frames: indices 0, s, 2s, ...
            return stride
    return 1


def format_allowlist(formats: Collection[str] | None) -> str:
    """``formats`` as FFmpeg's comma-separated ``format_whitelist``; ValueError for an unusable list."""
    names = DEFAULT_CONTAINER_FORMATS if formats is None else tuple(formats)
    bad = [name for name in names if not isinstance(name, str) or not _FORMAT_NAME.fullmatch(name)]
    if not names or bad:
        raise ValueError(f"container formats must be FFmpeg demuxer names like 'mp4', got {list(names)}")
    return ",".join(names)


def _open(path: Path, formats: Collection[str] | str | None) -> InputContainer:
    allowed = formats if isinstance(formats, str) else format_allowlist(formats)
    if not path.exists():
        raise VideoNotFoundError(path, "no such file")
    if path.is_dir():
        raise NotAMediaFileError(path, "is a directory, not a video file")
    if path.stat().st_size == 0:
        raise NotAMediaFileError(path, "is empty (0 bytes)")
    options = {"format_whitelist": allowed, "protocol_whitelist": "file"}
    try:  # an absolute name: FFmpeg never takes "name:rest" for a protocol
        container = av.open(str(path.absolute()), mode="r", options=options)
    except FileNotFoundError as exc:
        raise VideoNotFoundError(path, "no such file") from exc
    except (av.error.FFmpegError, OSError) as exc:
        if getattr(exc, "errno", None) == _EINVAL:
            raise UnsupportedFormatError(path, _refusal(path, allowed)) from None
        raise NotAMediaFileError(
            path, f"FFmpeg cannot read it as a media file ({_reason(exc)}); not a video, or corrupt/truncated"
        ) from exc
    name = container.format.name
    if name.endswith(_IMAGE_DEMUXER_SUFFIX) or name in _IMAGE_DEMUXERS:
        container.close()
        raise UnsupportedFormatError(path, f"is a still image or text ({name}), not a video")
    return container


def _refusal(path: Path, allowed: str) -> str:
    """Why a file FFmpeg recognised outside the allowlist is refused, from its first bytes."""
    with path.open("rb") as handle:
        head = handle.read(512)
    kind = next((what for magic, what in _SIGNATURES if head.startswith(magic)), None)
    if head.startswith(b"RIFF"):
        kind = _RIFF_KINDS.get(head[8:12], kind)
    if kind is None and head and b"\x00" not in head:
        try:
            head.decode("utf-8")
            kind = "a text file"
        except UnicodeDecodeError:
            pass
    if kind is not None:
        return f"is {kind}, not a video file"
    return f"is not in a video container format read here ({allowed.replace(',', ', ')})"


def _video_stream(container: InputContainer, path: Path) -> VideoStream:
    for stream in container.streams.video:
        if not stream.disposition & Disposition.attached_pic:  # cover art is not a video
            return stream
    kinds = ", ".join(sorted({str(stream.type) for stream in container.streams}))
    container.close()
    found = f"{kinds} streams only" if kinds else "it holds no streams at all"
    raise NoVideoStreamError(path, f"has no video stream ({found})")


def _decode(container: InputContainer, stream: VideoStream, path: Path) -> Iterator[tuple[int, VideoFrame]]:
    """(decode index, frame) pairs; FFmpeg errors become DecodeError carrying the failing index."""
    frames = container.decode(stream)
    index = 0
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except (av.error.FFmpegError, OSError) as exc:
            raise DecodeError(path, f"decoding failed at frame {index} ({_reason(exc)})", index) from exc
        yield index, frame
        index += 1


def _check_size(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise VideoTooLargeError(
            path, f"frame size {width}x{height} = {width * height} pixels exceeds max_pixels={max_pixels}"
        )


def _rotation(frame: VideoFrame, legacy: int) -> int:
    """Counter-clockwise display rotation: the frame's display matrix, else the legacy tag's ``legacy``."""
    return normalize_rotation(frame.rotation) if frame.rotation else legacy


def _legacy_rotation(stream: VideoStream) -> int:
    """The old 'rotate' stream tag (clockwise degrees) as a counter-clockwise rotation; 0 without one."""
    tag = next((value for key, value in stream.metadata.items() if key.lower() == "rotate"), None)
    if not tag:
        return 0
    try:
        return normalize_rotation(-float(tag))
    except ValueError:
        logger.warning("ignoring unreadable rotate tag %r", tag)
        return 0


def _timestamp(frame: VideoFrame, stream: VideoStream, index: int, origin: Fraction, fps: float) -> float:
    """Seconds since the stream's start (``origin``, s) from the frame's pts; index / fps without one."""
    time_base = frame.time_base or stream.time_base
    if frame.pts is None or not time_base:
        return index / fps if fps > 0 else float(index)
    return float(frame.pts * Fraction(time_base) - origin)


def _fps(stream: VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _duration(container: InputContainer, stream: VideoStream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
