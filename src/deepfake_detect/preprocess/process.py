"""One video -> manifest rows and face-crop JPEGs (runs inside a preprocessing worker).

Decode (every ``frame_stride``-th frame), detect, crop and track faces streaming; write each crop as a
JPEG into a work folder; then cut each track into constant-interval runs and clips of ``clip_len``
(SPEC §2 'Two-pointer') and delete the crops that are in no clip.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepfake_detect.config import Config
from deepfake_detect.data.store import clip_row, crop_file_name, failure_row
from deepfake_detect.faces import (
    FaceDetector,
    TrackCollector,
    constant_interval_runs,
    split_into_clips,
    track_faces,
)
from deepfake_detect.types import ClipRow, FaceTrack, Frame, VideoRecord, VideoStatus
from deepfake_detect.video import VideoError, iter_frames

logger = logging.getLogger(__name__)


@dataclass
class _Collected:
    decoded: int = 0
    tracks: TrackCollector = field(default_factory=TrackCollector)


def _counted(frames: Iterable[Frame], collected: _Collected) -> Iterator[Frame]:
    for frame in frames:
        collected.decoded += 1
        yield frame


def _save_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=quality)


def _collect(
    record: VideoRecord, config: Config, detector: FaceDetector, work_dir: Path | None
) -> _Collected:
    """Stream the video through detection and tracking; write crops to ``work_dir/t<track>/``."""
    collected = _Collected()
    frames = iter_frames(
        record.path,
        stride=config.clips.frame_stride,
        max_frames=config.preprocess.max_frames,
        max_pixels=config.preprocess.max_pixels,
        formats=config.preprocess.container_formats,
    )
    for face in track_faces(_counted(frames, collected), detector, config.faces):
        collected.tracks.add(face)
        if work_dir is not None:
            target = work_dir / f"t{face.track_id}" / crop_file_name(face.frame_index)
            _save_jpeg(target, face.crop, config.preprocess.jpeg_quality)
    return collected


def _track_clips(track: FaceTrack, stride: int, clip_len: int) -> tuple[list[list[int]], int]:
    """The clips of one track and the length of its longest constant-interval run."""
    runs = constant_interval_runs(track.frame_indices, stride)
    clips = [clip for run in runs for clip in split_into_clips(run, clip_len)]
    return clips, max((len(run) for run in runs), default=0)


def _prune_crops(work_dir: Path, track_id: int, keep: set[int]) -> None:
    folder = work_dir / f"t{track_id}"
    if not folder.is_dir():
        return
    if not keep:
        shutil.rmtree(folder)
        return
    for path in folder.iterdir():
        if int(path.stem) not in keep:
            path.unlink()


def _rows(record: VideoRecord, collected: _Collected, config: Config, work_dir: Path | None) -> list[ClipRow]:
    stride, clip_len = config.clips.frame_stride, config.clips.clip_len
    rows: list[ClipRow] = []
    longest, longest_track = 0, -1  # the longest constant-interval run over all tracks
    for track in collected.tracks.tracks():
        clips, run_len = _track_clips(track, stride, clip_len)
        if run_len > longest:
            longest, longest_track = run_len, track.track_id
        time_of = dict(zip(track.frame_indices, track.timestamps, strict=True))
        for clip_index, clip in enumerate(clips):
            times = [time_of[i] for i in clip]
            rows.append(clip_row(record, track.track_id, clip_index, clip, times))
        if work_dir is not None:
            _prune_crops(work_dir, track.track_id, {i for clip in clips for i in clip})
    if rows:
        return rows
    if not collected.tracks:
        message = f"no face found in {collected.decoded} decoded frames (frame_stride {stride})"
        return [failure_row(record, VideoStatus.NO_FACE, message)]
    message = (
        f"no clip of {clip_len} frames: the longest constant-interval run is {longest} frames "
        f"(track {longest_track}, {len(collected.tracks)} tracks, {collected.decoded} decoded frames, "
        f"frame_stride {stride})"
    )
    return [failure_row(record, VideoStatus.TOO_SHORT, message)]


def process_video(
    record: VideoRecord, config: Config, detector: FaceDetector, *, work_dir: Path | None = None
) -> list[ClipRow]:
    """The manifest rows of one video: one per clip (status ok), or one failure row saying why not.

    With ``work_dir`` the crops that belong to a clip are left there as ``t<track>/<frame:06d>.jpg``
    (the rows' ``crop_dir`` points to where :class:`~deepfake_detect.data.store.ClipStore` will move
    them); without, nothing is written. Decoding errors become failure rows with their status; other
    exceptions propagate.
    """
    try:
        collected = _collect(record, config, detector, work_dir)
    except VideoError as exc:
        if work_dir is not None and work_dir.is_dir():
            for child in work_dir.iterdir():
                shutil.rmtree(child)
        return [failure_row(record, exc.status, str(exc))]
    return _rows(record, collected, config, work_dir)
