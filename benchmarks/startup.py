"""Benchmark 9: ``detect``'s start-up, whole process vs its own pipeline time (target: at most + 6 s).

An 8-frame 640x360 clip with one face, the paper's model (ResNet-50 -> 512-d + LSTM 4 x 512, random init,
clip_len 8 so that the 8 frames are scored), ``--threads 2``. Measured side by side, alternately:

- ``detect``: ``deepfake-detect detect CLIP --model M --json OUT`` as a user runs it: the
  parent reads ``config.json`` only, the worker imports torch and loads the model;
- ``parent loads``: the same work the way ``detect`` did it before (a whole process that loads the
  model with ``Detector.load`` in the parent, runs ``detect_many`` and prints ``model_info()``);
- ``import torch``: a bare process that imports torch (the floor of any worker).

The ratio is the whole process's wall time less the pipeline's own ``timings.total`` (seconds).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from benchmarks import arguments, host, inputs, media, recording, timing

TARGET_S = 6.0
MODEL = inputs.ModelSpec(clip_len=8)

PARENT_LOADS = """
import json, sys
from deepfake_detect.inference import Detector, DetectOptions
detector = Detector.load(sys.argv[1], options=DetectOptions())
results = list(detector.detect_many([sys.argv[2]], threads=2))
print(json.dumps({"total": results[0].timings.get("total"), "model": detector.model_info()["backbone"]}))
"""


def run_detect(model: Path, clip: Path, out: Path) -> tuple[float, float]:
    """(whole-process s, pipeline ``timings.total`` s) of ``deepfake-detect detect``."""
    script = Path(sys.executable).with_name("deepfake-detect")  # the console script of this venv
    command = [str(script), "detect", str(clip), "--model", str(model)]
    seconds, _ = timing.timed_process([*command, "--json", str(out), "--threads", "2", "--quiet"])
    video = json.loads(out.read_text())["videos"][0]
    if video["status"] != "ok":
        raise RuntimeError(f"the clip was not scored: {video['status']} {video['error']}")
    return seconds, float(video["timings"]["total"])


def run_parent_loads(model: Path, clip: Path) -> tuple[float, float]:
    seconds, stdout = timing.timed_process([sys.executable, "-c", PARENT_LOADS, str(model), str(clip)])
    return seconds, float(json.loads(stdout.strip().splitlines()[-1])["total"])


def main(argv: Sequence[str] | None = None) -> int:
    p = arguments.parser(__doc__ or "")
    p.add_argument("--repeats", type=int, default=2)
    args = arguments.parse(p, argv)
    start = host.machine()
    spec = replace(inputs.QUICK_MODEL, clip_len=8) if args.quick else MODEL
    model = inputs.model_dir(args.cache, spec)
    clip = media.face_video(args.cache, 640, 360, 8 / 30)  # 8 frames at 30 fps
    out = args.cache / "startup.json"
    runs: dict[str, list[tuple[float, float]]] = {"detect": [], "parent_loads": [], "import_torch": []}
    for _ in range(max(1, args.repeats)):
        runs["detect"].append(run_detect(model, clip, out))
        runs["parent_loads"].append(run_parent_loads(model, clip))
        runs["import_torch"].append((timing.timed_process([sys.executable, "-c", "import torch"])[0], 0.0))
    best = {name: min(values, key=lambda r: r[0] - r[1]) for name, values in runs.items()}
    whole, pipeline = best["detect"]
    details = {
        "detect_whole_s": [round(w, 2) for w, _ in runs["detect"]],
        "detect_pipeline_s": [round(t, 2) for _, t in runs["detect"]],
        "parent_loads_whole_s": [round(w, 2) for w, _ in runs["parent_loads"]],
        "parent_loads_pipeline_s": [round(t, 2) for _, t in runs["parent_loads"]],
        "import_torch_s": [round(w, 2) for w, _ in runs["import_torch"]],
        "model": spec.name,
    }
    ratio = recording.Ratio(
        "startup",
        "8-frame clip" if not args.quick else "quick",
        whole - pipeline,
        TARGET_S,
        "at_most",
        "detect whole-process s - its pipeline timings.total s",
        details,
    )
    notes = [f"best of {len(runs['detect'])} alternating runs each (whole - pipeline); 2 torch threads."]
    recording.report(
        "startup",
        "detect start-up: whole process vs pipeline",
        [ratio],
        notes,
        record=args.record,
        start_info=start,
        results_path=args.results,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
