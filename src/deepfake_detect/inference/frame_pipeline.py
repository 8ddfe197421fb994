"""A video through a frame model's recipe (SPEC §9): N frames evenly spaced, the recipe's face detector,
crop rule, filter and normalisation, every member on every crop, the publisher's video-level rule.

Per crop the members' probabilities are averaged for display (faces and the per-frame timeline); the
video probability combines the members as their authors did: each member's rule over all its crops,
then the mean over members.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from deepfake_detect.faces.crop_rules import CROP_RULES
from deepfake_detect.faces.recipe_detector import RecipeMTCNN
from deepfake_detect.inference.frame_precision import (
    BF16_TOLERANCE,
    CHECK_CROPS,
    choose_precision,
    member_forward,
    precision_checks,
)
from deepfake_detect.inference.frame_rules import FRAME_AGGREGATIONS
from deepfake_detect.inference.results import FaceResult, TimelinePoint, VideoResult
from deepfake_detect.models.frame_dir import FrameRecipe, LoadedFrameModel
from deepfake_detect.types import BBox, Frame, VideoStatus
from deepfake_detect.video import DecodeError, VideoInfo, iter_frames, probe

__all__ = [
    "FrameCrop",
    "analyze_frame_video",
    "classify_crops",
    "collect_crops",
    "sample_indices",
    "video_probability",
]


@dataclass(frozen=True)
class FrameCrop:
    """One face of one sampled frame: its box (full-frame pixels), detector score and network input."""

    frame: int
    time_s: float
    box: tuple[float, float, float, float]
    score: float
    crop: np.ndarray  # (S, S, 3) uint8 RGB


def sample_indices(frame_count: int, n: int) -> list[int]:
    """``linspace(0, frame_count - 1, n)`` truncated to int, each index once (as both publishers read)."""
    if frame_count < 1:
        return []
    return sorted({int(i) for i in np.linspace(0, frame_count - 1, n, endpoint=True, dtype=int)})


def _sampled_frames(
    path: Path, n: int, max_pixels: int | None, formats: Collection[str] | None
) -> tuple[list[Frame], int, Any]:
    info = probe(path, max_pixels=max_pixels, formats=formats)
    count = info.estimated_frames
    if count is None:  # the container does not say: count them
        count = sum(1 for _ in iter_frames(path, max_pixels=max_pixels, formats=formats))
    wanted = sample_indices(count, n)
    if not wanted:
        raise DecodeError(path, "the video stream has no decodable frames", frame_index=0)
    keep, frames = set(wanted), []
    for frame in iter_frames(path, max_pixels=max_pixels, formats=formats):
        if frame.index in keep:
            frames.append(frame)
        if frame.index >= wanted[-1]:
            break
    if not frames:
        raise DecodeError(path, "none of the frames sampled evenly over the video could be decoded", 0)
    return frames, count, info


def collect_crops(frames: Sequence[Frame], detector: RecipeMTCNN, recipe: FrameRecipe) -> list[FrameCrop]:
    """Detect, drop faces below ``min_face_area_ratio`` of the frame's largest, crop; in frame order."""
    rule = CROP_RULES.get(recipe.crop.rule)
    crops: list[FrameCrop] = []
    for frame in frames:
        faces = detector.detect(frame.image)
        areas = [(b[2] - b[0]) * (b[3] - b[1]) for b, _ in faces]
        for (box, score), area in zip(faces, areas, strict=True):
            if recipe.min_face_area_ratio is not None and area < max(areas) * recipe.min_face_area_ratio:
                continue
            crop = rule(frame.image, box, recipe.crop.size)
            if crop is not None:
                crops.append(FrameCrop(frame.index, frame.timestamp, box, score, crop))
    return crops[: recipe.max_crops] if recipe.max_crops is not None else crops


def _inputs(batch: np.ndarray, recipe: FrameRecipe, device: str, channels_last: bool) -> torch.Tensor:
    """uint8 (B, S, S, 3) RGB -> float (B, 3, S, S): / 255, then the recipe's mean/std."""
    x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float() / 255.0
    if recipe.mean is not None and recipe.std is not None:
        mean = torch.tensor(recipe.mean, device=device).view(1, 3, 1, 1)
        x = (x - mean) / torch.tensor(recipe.std, device=device).view(1, 3, 1, 1)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def classify_crops(
    model: LoadedFrameModel,
    crops: Sequence[np.ndarray],
    batch_size: int = 16,
    device: str = "cpu",
    *,
    precision: str = "auto",
    channels_last: bool = True,
    tolerance: float = BF16_TOLERANCE,
) -> np.ndarray:
    """P(fake) of every member on every crop, (K members, M crops), in batches of ``batch_size``.

    Each member runs in the precision :func:`~.frame_precision.choose_precision` decided for it on
    :data:`~.frame_precision.CHECK_CROPS` crops spread evenly over the first video's crops (bf16
    autocast only where native, for "auto", and within ``tolerance`` of fp32);
    ``channels_last``: NHWC weights and inputs. :func:`~.frame_precision.precision_checks` says which ran.
    """
    recipe = model.config.recipe
    out = np.zeros((len(model.members), len(crops)), dtype=np.float64)
    if not crops:
        return out
    if channels_last:  # (no-op for onnxruntime members: they have no weights in torch)
        for member in model.members:
            member.to(memory_format=torch.channels_last)
    spread = np.unique(np.linspace(0, len(crops) - 1, min(len(crops), CHECK_CROPS)).round().astype(int))
    sample = _inputs(np.stack([crops[i] for i in spread]), recipe, device, channels_last)
    chosen = [choose_precision(m, sample, precision, tolerance).precision for m in model.members]
    for start in range(0, len(crops), batch_size):
        x = _inputs(np.stack(crops[start : start + batch_size]), recipe, device, channels_last)
        for k, member in enumerate(model.members):
            out[k, start : start + len(x)] = member_forward(member, x, chosen[k]).double().cpu().numpy()
    return out


def video_probability(probs: np.ndarray, frames: np.ndarray, recipe: FrameRecipe) -> float:
    """Each member's rule over its crops (``probs`` (K, M)), then the mean over members."""
    rule = FRAME_AGGREGATIONS.get(recipe.aggregation)
    return float(np.mean([rule(p, frames, **recipe.aggregation_kwargs) for p in probs]))


def _link_tracks(crops: Sequence[FrameCrop], min_iou: float = 0.3) -> list[list[int]]:
    """Greedy IoU linking of faces from one sampled frame to the next (for display only)."""
    tracks: list[list[int]] = []
    for i, crop in enumerate(crops):
        box = BBox(*crop.box)
        best, best_iou = None, min_iou
        for t, members in enumerate(tracks):
            last = crops[members[-1]]
            iou = box.iou(BBox(*last.box)) if last.frame < crop.frame else 0.0
            if iou > best_iou:
                best, best_iou = t, iou
        if best is None:
            tracks.append([i])
        else:
            tracks[best].append(i)
    return tracks


def _thumbnail(crop: np.ndarray, size: int = 96) -> bytes | None:
    small = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return jpeg.tobytes() if ok else None


def _faces(crops: Sequence[FrameCrop], per_crop: np.ndarray) -> list[FaceResult]:
    faces = []
    for track_id, ids in enumerate(_link_tracks(crops)):
        first, last = crops[ids[0]], crops[ids[-1]]
        faces.append(
            FaceResult(
                track_id=track_id,
                n_frames=len(ids),
                first_frame=first.frame,
                last_frame=last.frame,
                start_s=first.time_s,
                end_s=last.time_s,
                fake_probability=float(np.mean(per_crop[ids])),
                timeline=[TimelinePoint(crops[i].time_s, crops[i].time_s, float(per_crop[i])) for i in ids],
                thumbnail_jpeg=_thumbnail(first.crop),
                n_windows=len(ids),
            )
        )
    return faces


def _per_frame(crops: Sequence[FrameCrop], per_crop: np.ndarray) -> list[dict[str, float]]:
    """Per sampled frame with faces: the highest member-mean P(fake) of its faces (the face timeline)."""
    rows: dict[int, dict[str, float]] = {}
    for crop, p in zip(crops, per_crop, strict=True):
        row = rows.setdefault(
            crop.frame, {"frame": crop.frame, "time_s": crop.time_s, "fake_probability": 0.0}
        )
        row["fake_probability"] = max(row["fake_probability"], float(p))
    return list(rows.values())


def analyze_frame_video(
    path: Path,
    model: LoadedFrameModel,
    detector: RecipeMTCNN,
    *,
    threshold: float,
    max_pixels: int | None = None,
    formats: Collection[str] | None = None,
    device: str = "cpu",
    precision: str = "auto",
    channels_last: bool = True,
    batch_size: int = 16,
) -> VideoResult:
    """One video through the recipe (raises ``VideoError`` for unreadable files).

    ``formats``: the FFmpeg demuxers the file may be read with (None: the default allowlist).
    ``precision`` / ``channels_last`` / ``batch_size``: of :func:`classify_crops`; the result's
    ``info["precision"]`` says per member which precision ran and why.
    """
    recipe, timings, start = model.config.recipe, {}, time.perf_counter()
    frames, count, info = _sampled_frames(path, recipe.frames, max_pixels, formats)
    timings["decode"] = time.perf_counter() - start
    mark = time.perf_counter()
    crops = collect_crops(frames, detector, recipe)
    timings["detect"] = time.perf_counter() - mark
    described = _describe(info, frames, count, len(crops))
    if not crops:
        timings["total"] = time.perf_counter() - start
        problem = f"no face was found in the {len(frames)} frames sampled evenly over the video"
        return VideoResult.failed(str(path), VideoStatus.NO_FACE, problem, timings=timings, info=described)
    mark = time.perf_counter()
    probs = classify_crops(  # (K, M)
        model, [c.crop for c in crops], batch_size, device, precision=precision, channels_last=channels_last
    )
    timings["embed"] = time.perf_counter() - mark
    described["precision"] = precision_checks(model.members)
    frame_ids = np.array([c.frame for c in crops])
    video_p = video_probability(probs, frame_ids, recipe)
    per_crop = probs.mean(axis=0)  # (M,)
    described["frame_probabilities"] = _per_frame(crops, per_crop)
    timings["total"] = time.perf_counter() - start
    return VideoResult(
        path=str(path),
        status=VideoStatus.OK,
        fake_probability=video_p,
        label="fake" if video_p >= threshold else "real",
        faces=_faces(crops, per_crop),
        timings=timings,
        info=described,
        threshold=threshold,
    )


def _describe(info: VideoInfo, frames: Sequence[Frame], count: int, n_crops: int) -> dict[str, Any]:
    return {
        **info.describe(),
        "frame_count": count,
        "frames_used": len(frames),
        "sampled_frames": [f.index for f in frames],
        "face_detections": n_crops,
        "crops": n_crops,
    }
