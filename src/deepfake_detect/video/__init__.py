"""Video decoding and encoding (SPEC §3, layer 2)."""

from deepfake_detect.video.decode import (
    DecodeError,
    NotAMediaFileError,
    NoVideoStreamError,
    UnsupportedFormatError,
    VideoError,
    VideoInfo,
    VideoNotFoundError,
    VideoTooLargeError,
    choose_stride,
    format_allowlist,
    iter_frames,
    normalize_rotation,
    probe,
    rotate_image,
)
from deepfake_detect.video.encode import write_video

__all__ = [
    "DecodeError",
    "NoVideoStreamError",
    "NotAMediaFileError",
    "UnsupportedFormatError",
    "VideoError",
    "VideoInfo",
    "VideoNotFoundError",
    "VideoTooLargeError",
    "choose_stride",
    "format_allowlist",
    "iter_frames",
    "normalize_rotation",
    "probe",
    "rotate_image",
    "write_video",
]
