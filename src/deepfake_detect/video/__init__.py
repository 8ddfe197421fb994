"""Video decoding and encoding (SPEC §3, layer 2)."""

from deepfake_detect.video.decode import (
    DecodeError,
    NotAMediaFileError,
    NoVideoStreamError,
    VideoError,
    VideoInfo,
    VideoNotFoundError,
    VideoTooLargeError,
    choose_stride,
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
    "VideoError",
    "VideoInfo",
    "VideoNotFoundError",
    "VideoTooLargeError",
    "choose_stride",
    "iter_frames",
    "normalize_rotation",
    "probe",
    "rotate_image",
    "write_video",
]
