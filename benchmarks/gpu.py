"""Benchmark 6: the detect benchmarks on a CUDA GPU, and the end-to-end time of a DFDC-like video
(10 s of 1080p at 30 fps, every frame examined; target: under 1 s).

``python -m benchmarks.gpu`` (not part of ``python -m benchmarks``, which measures the CPU). Cases:

- detect vs the naive reference (benchmark 1) with both on the GPU: the naive pipeline runs MTCNN and
  the fp32 extractor on CUDA one frame and one crop at a time; ``detect`` uses its defaults on CUDA
  (bf16 autocast, batched crops, MTCNN on CUDA on every 4th frame, 8 such frames per call).
- DFDC-like end to end: ``Detector.detect`` with its defaults (``max_frames`` 300: the whole video) on
  the 1-face 1080p video, best of 3 after a warm-up on another video; also without batched detection
  (``detect_batch=1``) and with the detector on every frame (``detect_every=1``). Decoding stays on
  the CPU (PyAV, threaded).

Without CUDA it says so and exits 0 (``--device cpu --quick`` runs it on the CPU as a smoke test).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from benchmarks import arguments, detect_vs_naive, host, media, recording, timing
from deepfake_detect.inference import DetectOptions, Detector

END_TO_END_TARGET_S = 1.0


def end_to_end(model: Any, video: Any, warm: Any, device: str, options: DetectOptions) -> dict[str, Any]:
    """Best and first wall time of ``Detector.detect`` over 3 runs, after a warm-up on ``warm``."""
    detector = Detector.load(model, options=options, device=device)
    with timing.quiet_logs():
        detector.detect(warm)
        runs = [timing.timed(lambda: detector.detect(video)) for _ in range(3)]
    result = runs[0][0]
    if not result.ok:
        raise RuntimeError(f"detect failed on {video}: {result.status} {result.error}")
    best = min(seconds for _, seconds in runs)
    stages = min(runs, key=lambda run: run[1])[0].timings
    return {
        "best_s": best,
        "runs_s": [round(seconds, 3) for _, seconds in runs],
        "stages": {k: round(v, 3) for k, v in stages.items()},
        "frames": result.info.get("frames_used"),
        "faces": [f.n_frames for f in result.faces],
        "p": [round(f.fake_probability, 4) for f in result.faces],
        "precision": detector.model_info()["precision"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = arguments.parser(__doc__ or "")
    p.add_argument("--device", default="cuda", help="torch device (default cuda)")
    args = arguments.parse(p, argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("GPU: torch.cuda.is_available() is False on this machine; benchmark 6 needs a CUDA GPU.")
        return 0
    host.set_threads(2)
    start = host.machine()
    card = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "none (CPU)"
    case = detect_vs_naive.setup(args.cache, args.quick)
    ratios = detect_vs_naive.run_all(args.cache, case, device=args.device, prefix=f"{args.device}, ")
    video = media.face_video(args.cache, *case.size, case.seconds, faces=1)
    warm = media.face_video(args.cache, 480, 270, 0.6)
    for name, options in (
        ("defaults", DetectOptions()),
        ("detect_batch=1 (no batched detection)", DetectOptions(detect_batch=1)),
        ("detect_every=1", DetectOptions(detect_every=1)),
    ):
        figures = end_to_end(case.models[0][1], video, warm, args.device, options)
        ratios.append(
            recording.Ratio(
                "gpu_end_to_end",
                f"{args.device}, {video.stem}, {case.spec.backbone}, {name}",
                figures["best_s"],
                END_TO_END_TARGET_S,
                "at_most",
                "seconds for the whole video (best of 3)",
                figures,
            )
        )
    notes = [
        f"card: {card}; torch {torch.__version__}; CPU threads for decoding and the naive crops: 2.",
        "detect_vs_naive rows: both sides on the GPU (see benchmarks/detect_vs_naive.py for the rest).",
    ]
    recording.report(
        "gpu",
        "detect on a GPU (benchmark 6)",
        ratios,
        notes,
        record=args.record,
        start_info=start,
        results_path=args.results,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
