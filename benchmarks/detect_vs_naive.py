"""Benchmark 1: ``Detector.detect`` vs a naive per-frame reference (target: >= 5x faster, same faces,
probabilities within 0.02).

Videos: 10 s of 1920x1080 at 30 fps, H.264, with 1 and with 3 real faces (scikit-image photographs)
moving. Both sides read the same model directory (ResNet-50 extractor at 224 px -> 512-d, the paper's
LSTM 4 x 512, random init; clip_len 100 so that one window covers the 100 frames) and the same first
100 frames: the naive side (``benchmarks/naive.py``) decodes with OpenCV, runs MTCNN on the full frame
and ResNet-50 in fp32 one crop at a time; ``detect`` runs with default settings except ``max_frames=100``
(the same frames) and ``keep_embeddings=True`` (so that embeddings can be compared; costs nothing).
The demo's trained model (cnn4), when ``deepfake-detect demo`` has been run, is measured too.
Model loading is not timed on either side; both are warmed up on a dummy input first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import arguments, host, inputs, media, recording, timing
from benchmarks.naive import NaivePipeline, NaiveResult
from deepfake_detect.inference import DetectOptions, Detector, VideoResult
from deepfake_detect.models.io import read_model_config

SPEED_TARGET = 5.0
PROB_TOLERANCE = 0.02


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return np.sum(a * b, axis=-1)


def compare_faces(naive: NaiveResult, result: VideoResult) -> dict[str, Any]:
    """Pair each naive track with the detect track sharing most frames; frame agreement, cosine, |dp|."""
    pairs, used = [], set()
    scored = [t for t in naive.tracks if np.isfinite(t.probability)]  # >= min_clip_len frames
    for track in scored:
        frames = set(track.frame_indices)
        candidates = [
            (len(frames & set(np.asarray(face.frame_indices).tolist())), k)
            for k, face in enumerate(result.faces)
            if face.frame_indices is not None and k not in used
        ]
        overlap, k = max(candidates, default=(0, -1))
        if k < 0 or overlap == 0:
            continue
        used.add(k)
        face = result.faces[k]
        theirs = {int(i): row for i, row in zip(face.frame_indices, face.embeddings, strict=True)}  # type: ignore[arg-type]
        common_frames = sorted(frames & set(theirs))
        mine = {i: e for i, e in zip(track.frame_indices, track.embeddings, strict=True)}
        cos = cosine(np.stack([mine[i] for i in common_frames]), np.stack([theirs[i] for i in common_frames]))
        pairs.append(
            {
                "frames_naive": len(frames),
                "frames_detect": face.n_frames,
                "shared": overlap,
                "p_naive": track.probability,
                "p_detect": face.fake_probability,
                "cos_min": float(cos.min()),
            }
        )
    return {
        "pairs": pairs,
        "tracks_naive": len(scored),
        "tracks_detect": len(result.faces),
        "short_tracks_naive": len(naive.tracks) - len(scored),
        "short_tracks_detect": int(result.info.get("tracks_seen", 0)) - len(result.faces),
    }


def same_faces(match: dict[str, Any], faces: int) -> bool:
    """As many scored tracks on each side as faces, paired one to one, >= 95% of their frames shared.
    (Tracks too short to score, e.g. a false detection in a few frames, are counted but not compared.)"""
    pairs = match["pairs"]
    return (
        match["tracks_naive"] == match["tracks_detect"] == faces
        and len(pairs) == faces
        and all(p["shared"] >= 0.95 * max(p["frames_naive"], p["frames_detect"]) for p in pairs)
    )


def run_case(
    video: Path, model: Path, faces: int, frames: int, label: str, device: str = "cpu"
) -> list[recording.Ratio]:
    options = DetectOptions(max_frames=frames, keep_embeddings=True)
    detector = Detector.load(model, options=options, device=device)
    detector.face_detector.detect(np.zeros((160, 160, 3), np.uint8))  # warm-up: build MTCNN
    size = detector.engine.config.faces.get("crop_size", 256)
    detector.engine.embed(np.zeros((options.batch_size, size, size, 3), np.uint8))
    naive = NaivePipeline(model, device=device)
    naive.warm_up()
    with timing.quiet_logs():
        result, detect_s = timing.timed(lambda: detector.detect(video))
        reference = naive.run(video, frames)
    if not result.ok:
        raise RuntimeError(f"detect failed on {video}: {result.status} {result.error}")
    match = compare_faces(reference, result)
    diffs = [abs(p["p_naive"] - p["p_detect"]) for p in match["pairs"]]
    max_diff = max(diffs, default=float("nan"))
    found = same_faces(match, faces)
    speedup = reference.seconds / detect_s
    details: dict[str, Any] = {
        "naive_s": reference.seconds,
        "detect_s": detect_s,
        "naive_stages": {k: round(v, 2) for k, v in reference.stages.items()},
        "detect_stages": {k: round(v, 2) for k, v in result.timings.items()},
        "same_faces": found,
        "tracks": {k: v for k, v in match.items() if k != "pairs"},
        "max_abs_prob_diff": max_diff,
        "faces": [
            {k: round(v, 4) if isinstance(v, float) else v for k, v in p.items()} for p in match["pairs"]
        ],
        "video_p_detect": result.fake_probability,
        "precision": detector.model_info()["precision"],
    }
    speed = recording.Ratio(
        "detect_vs_naive",
        f"{label}, speed",
        speedup,
        SPEED_TARGET,
        "at_least",
        f"naive s / detect s over {frames} frames",
        details,
    )
    agree = recording.Ratio(
        "detect_vs_naive",
        f"{label}, max |p_naive - p_detect|",
        max_diff,
        PROB_TOLERANCE,
        "at_most",
        f"same faces: {found}",
    )
    return [speed, agree]


@dataclass(frozen=True)
class Setup:
    """The videos and models of benchmark 1 (also used by benchmark 6 on a GPU)."""

    size: tuple[int, int]
    seconds: float
    frames: int
    face_counts: tuple[int, ...]
    spec: inputs.ModelSpec
    models: list[tuple[str, Path]]  # (name, model dir): the random-init spec, then a demo-trained one
    demo: Path | None


def setup(cache: Path, quick: bool) -> Setup:
    face_counts: tuple[int, ...]
    if quick:
        size, seconds, frames, face_counts, spec = (480, 270), 0.6, 18, (1,), inputs.QUICK_MODEL
    else:
        size, seconds, frames, face_counts, spec = (1920, 1080), 10.0, 100, (1, 3), inputs.ModelSpec()
    models = [(spec.backbone, inputs.model_dir(cache, spec))]
    demo = None if quick else inputs.demo_model_dir(cache)
    if demo is not None:
        models.append((f"demo-trained {read_model_config(demo).backbone}", demo))
    return Setup(size, seconds, frames, face_counts, spec, models, demo)


def run_all(cache: Path, case: Setup, device: str = "cpu", prefix: str = "") -> list[recording.Ratio]:
    """Every (video, model) pair of ``case``; labels start with ``prefix``."""
    ratios = []
    for faces in case.face_counts:
        video = media.face_video(cache, *case.size, case.seconds, faces=faces)
        for name, model in case.models:
            label = f"{prefix}{case.size[1]}p, {faces} face{'s' if faces > 1 else ''}, {name}"
            ratios += run_case(video, model, faces, case.frames, label, device=device)
    return ratios


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments.parse(arguments.parser(__doc__ or ""), argv)
    host.set_threads(2)
    start = host.machine()
    case = setup(args.cache, args.quick)
    spec, demo = case.spec, case.demo
    ratios = run_all(args.cache, case)
    notes = [
        "naive = cv2.VideoCapture + MTCNN on the full frame + fp32 extractor one crop at a time + LSTM;"
        " detect = Detector defaults (max_frames set to the same frames, keep_embeddings on).",
        f"{spec.backbone}: random init (probabilities near 0.5, so its 0.02 check is weak); cos_min is the"
        " lowest cosine similarity between the two sides' embeddings of the same face and frame.",
    ]
    if demo is not None:
        config = read_model_config(demo)
        notes.append(
            f"demo-trained model: {config.backbone} at {config.input_size} px -> {config.embed_dim}-d,"
            f" {config.head} {config.head_kwargs}, faces {config.faces}, clips {config.clips}"
            f" (trained by `deepfake-detect demo` on the synthetic benchmark, created {config.created})."
        )
    elif not args.quick:
        notes.append("no demo-trained model was found (run `deepfake-detect demo`); only random init.")
    recording.report(
        "detect_vs_naive",
        "detect vs a naive reference",
        ratios,
        notes,
        record=args.record,
        start_info=start,
        results_path=args.results,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
