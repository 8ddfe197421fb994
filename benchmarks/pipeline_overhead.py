"""Benchmark 2: ``detect`` end to end vs the sum of its stages timed alone (target: at most 1.25).

Same 1080p video with one face as benchmark 1 and the same model (ResNet-50 + LSTM 4 x 512), Detector
defaults (300 frames = the whole 10 s). Stages alone, with the Detector's own components and settings:
decode (``video.iter_frames`` only), detect (the face detector on the frames the pipeline detects in,
every ``detect_every``-th, with the Detector's ``detect_threads`` torch threads), crop
(``faces.track_faces``' cropping, tracking and box interpolation: its loop time less decoding and
detection), embed (all crops, ``batch_size`` at a time) and head (scoring and timeline
windows of every track). End-to-end and stages are measured alternately,
``repeats`` times each, and the fastest of each is used (the machine is shared).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import arguments, host, inputs, media, recording, timing
from deepfake_detect.faces import track_faces
from deepfake_detect.inference import DetectOptions, Detector
from deepfake_detect.inference.analyze import StageTimer, TimedDetector
from deepfake_detect.inference.scoring import score_spans, scoring_windows, timeline_windows
from deepfake_detect.video import choose_stride, iter_frames, probe

TARGET = 1.25
STAGES = ("decode", "detect", "crop", "embed", "head")


def stages_alone(detector: Detector, video: Path) -> dict[str, float]:
    """Seconds of each stage run by itself (same frames, same components, same settings)."""
    settings = detector.settings  # what the pipeline reads
    faces = settings.faces
    watches = {stage: timing.Stopwatch() for stage in STAGES}
    with watches["decode"]:
        info = probe(video, max_pixels=settings.max_pixels)
        stride = choose_stride(info, settings.frame_stride, settings.min_clip_len)
        count = sum(1 for _ in iter_frames(video, stride, settings.max_frames, settings.max_pixels))
    detect_timer = StageTimer()  # the pipeline's own timed wrapper: same threads, same batching
    timed_detector = TimedDetector(detector.face_detector, detect_timer, settings.detect_threads)
    crops: list[np.ndarray] = []
    tracks: dict[int, list[int]] = {}  # track id -> frame indices
    positions: dict[int, list[int]] = {}  # track id -> rows of its crops in ``crops``
    loop = timing.Stopwatch()
    with loop:  # crop + track = this loop's time less its decoding (timed above) and detection
        for face in track_faces(
            iter_frames(video, stride, settings.max_frames, settings.max_pixels), timed_detector, faces
        ):
            tracks.setdefault(face.track_id, []).append(face.frame_index)
            positions.setdefault(face.track_id, []).append(len(crops))
            crops.append(face.crop)
    watches["detect"].seconds = detect_timer.seconds.get("detect", 0.0)
    watches["crop"].seconds = max(0.0, loop.seconds - watches["detect"].seconds - watches["decode"].seconds)
    embeddings = []
    with watches["embed"]:
        for start in range(0, len(crops), settings.batch_size):
            embeddings.append(detector.engine.embed(np.stack(crops[start : start + settings.batch_size])))
    all_embeddings = np.concatenate(embeddings) if embeddings else np.zeros((0, 1), np.float32)
    with watches["head"]:
        for track_id, indices in tracks.items():
            spans = scoring_windows(indices, stride, settings.clip_len, settings.min_clip_len)
            timeline = timeline_windows(
                indices, stride, settings.timeline_window, settings.timeline_hop, settings.min_clip_len
            )
            if spans:
                score_spans(detector.engine, all_embeddings[positions[track_id]], spans + timeline)
    seconds = {stage: watch.seconds for stage, watch in watches.items()}
    seconds["frames"] = float(count)
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    p = arguments.parser(__doc__ or "")
    p.add_argument("--repeats", type=int, default=2)
    args = arguments.parse(p, argv)
    host.set_threads(2)
    start = host.machine()
    if args.quick:
        video = media.face_video(args.cache, 480, 270, 0.6)
        model, options = inputs.model_dir(args.cache, inputs.QUICK_MODEL), DetectOptions()
    else:
        video = media.face_video(args.cache, 1920, 1080, 10.0)
        model, options = inputs.model_dir(args.cache, inputs.ModelSpec()), DetectOptions()
    detector = Detector.load(model, options=options)
    detector.face_detector.detect(np.zeros((160, 160, 3), np.uint8))  # warm-up
    detector.detect(media.face_video(args.cache, 480, 270, 0.6))  # first-call costs of every stage
    ends, alones, timings = [], [], []
    with timing.quiet_logs():
        for _ in range(max(1, args.repeats)):
            result, seconds = timing.timed(lambda: detector.detect(video))
            ends.append(seconds)
            timings.append(result.timings)
            alones.append(stages_alone(detector, video))
    best_end = min(ends)
    best_alone = min(alones, key=lambda s: sum(s[k] for k in STAGES))
    total_alone = sum(best_alone[k] for k in STAGES)
    details = {
        "end_to_end_s": [round(s, 2) for s in ends],
        "stages_alone_s": {k: round(best_alone[k], 2) for k in STAGES},
        "sum_alone_s": total_alone,
        "detect_own_timings": {k: round(v, 2) for k, v in min(timings, key=lambda t: t["total"]).items()},
        "frames": int(best_alone["frames"]),
    }
    ratio = recording.Ratio(
        "pipeline_overhead",
        f"{video.stem}",
        best_end / total_alone,
        TARGET,
        "at_most",
        "detect end-to-end s / sum of stages alone s",
        details,
    )
    notes = [f"best of {len(ends)} end-to-end runs and of {len(alones)} stage-alone runs (interleaved)."]
    recording.report(
        "pipeline_overhead",
        "detect end to end vs its stages alone",
        [ratio],
        notes,
        record=args.record,
        start_info=start,
        results_path=args.results,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
