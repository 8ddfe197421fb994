"""The built-in synthetic benchmark: labelled H.264 videos plus a DFDC-style ``metadata.json`` (SPEC §6).

Each *scene* (a moving face photo, :mod:`.scene`) gives a pair: a REAL video whose face composite is held
constant over time and a FAKE whose composite jitters per frame (:mod:`.swap`); the FAKE's ``original`` is
the REAL's file name. An odd ``videos`` leaves the last scene with its REAL only. Every video gets its own
H.264 quality (crf from ``crfs``) and, when ``vary_size``, sometimes a smaller or larger frame size (same
aspect, even sides). Besides ``metadata.json`` (exactly DFDC's train format) the generator writes
``synth.json`` with the ground truth: parameters, per-video track, crf, size, base photo, donor, and for
every frame the face box ``[x1, y1, x2, y2]`` and the swapped region as a 2x3 affine ``[a, b, c, d, e, f]``
taking the unit disk onto the blended ellipse (pixel = (a x + b y + c, d x + e y + f)).

Everything is drawn from ``numpy.random.Generator``s seeded by ``seed``: scene i's generator depends on
(seed, i) only, so the same seed gives byte-identical metadata and identical frames, and a larger
``videos`` extends a smaller one.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from deepfake_detect.data.synth.scene import ScenePlan, SceneRenderer, plan_scene
from deepfake_detect.data.synth.sources import FRONTAL_BASES, LFW_DONORS, FacePhoto, base_photos, lfw_donor
from deepfake_detect.data.synth.swap import (
    Donor,
    SwapParams,
    composite,
    draw_params,
    draw_style,
    prepare_donor,
)
from deepfake_detect.infra.files import write_json
from deepfake_detect.types import Label, VideoRecord
from deepfake_detect.video import write_video

logger = logging.getLogger(__name__)

Track = Literal["temporal", "spatial", "both"]
TRACKS: tuple[str, ...] = ("temporal", "spatial", "both")
DEFAULT_CRFS: tuple[int, ...] = (18, 23, 28)
# Frame-size factors relative to ``size`` and how often each is drawn when ``vary_size``.
SIZE_FACTORS: tuple[tuple[float, float], ...] = ((1.0, 0.5), (0.8, 0.25), (1.25, 0.25))
# astronaut, hopper, camera: the profile (camera) takes frontal donors less convincingly, so less often.
BASE_WEIGHTS = (0.4, 0.4, 0.2)
PHOTO_DONOR_P = 0.4  # a frontal photo (not the base itself) as donor, else an LFW face
NAME_LENGTH = 10
GENERATOR_VERSION = 1  # bump when the same seed would give different videos
# By default every frame is intra-coded: with inter-frame prediction the codec keeps less fine detail in a
# face that is stable over time (real) than in one that jitters (fake), a per-frame cue (its size:
# benchmarks/RESULTS.md, "Figures behind the code"; none with intra-only coding).
_INTRA_ONLY = {"x264-params": "keyint=1"}
_INTER = {"x264-params": "mbtree=0"}


class SynthError(ValueError):
    """Invalid generator parameters."""


@dataclass(frozen=True)
class _Member:
    name: str
    label: Label
    track: str
    crf: int
    width: int
    height: int
    params: SwapParams


def _validate(
    videos: int, track: str, size: tuple[int, int], frames: int, fps: float, crfs: Sequence[int]
) -> None:
    if videos < 1:
        raise SynthError(f"videos must be at least 1, got {videos}")
    if track not in TRACKS:
        raise SynthError(f"unknown track {track!r}; choose one of {', '.join(TRACKS)}")
    width, height = size
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise SynthError(f"size must be even (H.264) and at least 32x32, got {width}x{height}")
    if frames < 2:
        raise SynthError(f"frames must be at least 2, got {frames}")
    if not 1.0 <= fps <= 240.0:
        raise SynthError(f"fps must be in [1, 240], got {fps}")
    if not crfs or any(not 0 <= c <= 51 for c in crfs):
        raise SynthError(f"crfs must be a non-empty list of H.264 crf values in 0..51, got {list(crfs)}")


def video_names(seed: int, count: int) -> list[str]:
    """``count`` distinct file stems of 10 lowercase letters, determined by ``seed`` (prefix-stable)."""
    rng = np.random.default_rng([seed, 0])
    letters = np.array(list(string.ascii_lowercase))
    names: list[str] = []
    while len(names) < count:
        name = "".join(letters[rng.integers(0, 26, size=NAME_LENGTH)])
        if name not in names:
            names.append(name)
    return names


def _pick_donor(rng: np.random.Generator, base: int) -> FacePhoto:
    others = [i for i in FRONTAL_BASES if i != base]
    if rng.random() < PHOTO_DONOR_P:
        donor = base_photos()[others[int(rng.integers(0, len(others)))]]
    else:
        donor = lfw_donor(int(rng.choice(LFW_DONORS)))
    return donor.flipped() if rng.random() < 0.5 else donor


def _draw_size(rng: np.random.Generator, size: tuple[int, int], vary: bool) -> tuple[int, int]:
    factors, weights = zip(*SIZE_FACTORS, strict=True)
    factor = float(rng.choice(factors, p=np.array(weights) / sum(weights))) if vary else 1.0
    return tuple(max(32, 2 * round(side * factor / 2)) for side in size)  # type: ignore[return-value]


def _frames(
    plan: ScenePlan, donor: Donor, member: _Member, truth: dict[str, list[Any]]
) -> Iterator[np.ndarray]:
    """Render, composite and finish each frame; record its face box and swap ellipse in ``truth``."""
    renderer = SceneRenderer(plan, member.width, member.height)
    for t in range(plan.frames):
        scene = renderer.render(t)
        region = composite(scene, donor, member.params, t)
        truth["face_boxes"].append([round(v, 1) for v in scene.face_box])
        truth["swap_ellipses"].append([round(float(v), 3) for v in region.ravel()])
        yield renderer.finish(scene.image, t)


def _scene_track(track: str, index: int) -> str:
    return ("temporal", "spatial")[index % 2] if track == "both" else track


def _plan_pair(
    seed: int, index: int, names: Sequence[str], track: str, settings: dict[str, Any]
) -> tuple[ScenePlan, Donor, list[_Member]]:
    """Scene ``index``: its plan, its colour-matched donor and its REAL (then FAKE) video."""
    rng = np.random.default_rng([seed, 1, index])
    base = int(rng.choice(len(BASE_WEIGHTS), p=BASE_WEIGHTS))
    photo = base_photos()[base]
    photo = photo.flipped() if rng.random() < 0.5 else photo
    donor_photo = _pick_donor(rng, base)
    plan = plan_scene(rng, photo, settings["frames"], settings["fps"])
    donor = prepare_donor(donor_photo, photo, plan.tint)
    style = draw_style(rng)
    members = []
    for name, label in zip(names, (Label.REAL, Label.FAKE), strict=False):
        fake = label is Label.FAKE
        params = draw_params(
            rng,
            style,
            plan.frames,
            per_frame=fake,
            jitter=settings["jitter"],
            artefacts=fake and track == "spatial",
        )
        crf = int(rng.choice(np.asarray(settings["crfs"])))
        width, height = _draw_size(rng, tuple(settings["size"]), settings["vary_size"])
        members.append(_Member(name, label, track, crf, width, height, params))
    return plan, donor, members


def _write_json(path: Path, data: object) -> None:
    """Deterministic (sorted keys, one line), atomic JSON file."""
    write_json(path, data, indent=None, sort_keys=True)


def _write_member(
    out: Path, plan: ScenePlan, donor: Donor, member: _Member, source: str, options: dict[str, str]
) -> tuple[VideoRecord, dict[str, Any]]:
    """Encode one video; its record and its ground truth (face box and swap ellipse per frame)."""
    frame_truth: dict[str, list[Any]] = {"face_boxes": [], "swap_ellipses": []}
    path = out / f"{member.name}.mp4"
    fps = float(plan.fps)
    write_video(path, _frames(plan, donor, member, frame_truth), fps=fps, crf=member.crf, options=options)
    extra = {
        "track": member.track,
        "crf": str(member.crf),
        "size": f"{member.width}x{member.height}",
        "base": plan.photo.name,
        "donor": donor.name,
    }
    if member.label is Label.FAKE:
        extra["original"] = f"{source}.mp4"
    record = VideoRecord(member.name, path, member.label, source, "synth", "train", extra)
    return record, {**extra, "label": member.label.name, **frame_truth}


def _metadata(records: list[VideoRecord]) -> dict[str, dict[str, str]]:
    """DFDC train format: file name -> label, split and, for a fake, the original's file name."""
    metadata = {}
    for record in records:
        entry = {"label": "FAKE" if record.label is Label.FAKE else "REAL", "split": "train"}
        if record.label is Label.FAKE:
            entry["original"] = record.extra["original"]
        metadata[record.path.name] = entry
    return metadata


def generate_dataset(
    out: Path,
    videos: int = 20,
    seed: int = 0,
    track: Track = "temporal",
    size: tuple[int, int] = (320, 240),
    frames: int = 150,
    fps: float = 25.0,
    progress: Callable[[int], None] | None = None,
    *,
    jitter: float = 1.0,
    crfs: Sequence[int] = DEFAULT_CRFS,
    vary_size: bool = True,
    inter_frames: bool = False,
    overwrite: bool = False,
) -> list[VideoRecord]:
    """Write ``videos`` labelled mp4s, ``metadata.json`` (DFDC train format) and ``synth.json`` to ``out``.

    ``track``: "temporal" (only frame-to-frame change tells a fake), "spatial" (fakes also show seams in
    every frame) or "both" (scenes alternate). ``size`` = (width, height), the base frame size;
    ``jitter`` scales the fakes' per-frame jitter (difficulty: smaller is harder). ``crfs``: H.264 qualities
    drawn per video; ``vary_size``: sometimes 0.8x or 1.25x ``size``; ``inter_frames``: P-frames as in
    real footage, at the price of a weak per-frame cue (see ``_INTRA_ONLY``). ``progress`` is called
    with the number of videos written so far. Raises :class:`SynthError` for bad parameters and
    ``FileExistsError`` if ``out`` already holds a ``metadata.json`` and ``overwrite`` is false.
    """
    _validate(videos, track, size, frames, fps, crfs)
    if jitter < 0:
        raise SynthError(f"jitter must be >= 0, got {jitter}")
    out = Path(out)
    if (out / "metadata.json").exists() and not overwrite:
        raise FileExistsError(f"{out / 'metadata.json'} exists: choose a new folder or allow overwriting")
    out.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "frames": frames,
        "fps": fps,
        "jitter": jitter,
        "crfs": list(crfs),
        "size": list(size),
        "vary_size": vary_size,
        "inter_frames": inter_frames,
    }
    options = _INTER if inter_frames else _INTRA_ONLY
    names = video_names(seed, videos)
    records: list[VideoRecord] = []
    truth: dict[str, Any] = {}
    for index in range((videos + 1) // 2):
        pair = names[2 * index : 2 * index + 2]
        plan, donor, members = _plan_pair(seed, index, pair, _scene_track(track, index), settings)
        for member in members:
            record, truth[f"{member.name}.mp4"] = _write_member(out, plan, donor, member, pair[0], options)
            records.append(record)
            if progress is not None:
                progress(len(records))
    settings.update(seed=seed, track=track, videos=videos)
    _write_json(out / "synth.json", {"generator": GENERATOR_VERSION, "settings": settings, "videos": truth})
    _write_json(out / "metadata.json", _metadata(records))
    logger.info("wrote %d synthetic videos (%s track) to %s", len(records), track, out)
    return records
