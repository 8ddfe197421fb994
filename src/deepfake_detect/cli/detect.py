"""``deepfake-detect detect PATH...``: a verdict per video and per face, with a timeline.

Every file is analysed in a child process (``Detector.detect_many``), so a file that crashes the decoder
or hangs costs only itself. ``--jsonl OUT`` appends a line per video as it finishes and resumes on a
rerun (``cli/batch.py``); ``--cluster`` runs the files on Dask (``deepfake_detect.cluster``).
Exit codes: 0 when every video was scored or legitimately had no usable face (ok, no_face, too_short);
1 when any was undecodable, had no video stream, was not found or was too large; 2 on usage errors
(bad options, no model).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.table import Table

from deepfake_detect.cli.app import app
from deepfake_detect.cli.batch import BatchSettings, run_jsonl
from deepfake_detect.cli.common import (
    QuietOption,
    RegistryHelpCommand,
    VerboseOption,
    console,
    err_console,
    fail,
    make_progress,
    setup_logging,
)
from deepfake_detect.inference.options import option_bounds, option_default
from deepfake_detect.infra.media import VIDEO_SUFFIXES

if TYPE_CHECKING:
    from deepfake_detect.inference import DetectOptions, Detector, VideoResult
    from deepfake_detect.inference.remote import WorkerDetector
    from deepfake_detect.infra.isolation import IsolationError


NO_MODEL_MESSAGE = (
    "no model given and no model from the demo was found. Train one with `deepfake-detect demo` "
    "(a few minutes on a CPU; later runs of detect then find it), or pass --model DIR, a folder with "
    "config.json, extractor.safetensors and head.safetensors (written by the demo, `experiment` or "
    "`train-head`)."
)


def collect_videos(paths: Iterable[Path]) -> list[Path]:
    """Files as given (any suffix), folders searched recursively for video suffixes; sorted, no repeats.

    A path that does not exist is kept (it becomes a ``not_found`` result). A folder without any video
    is a usage error (ValueError).
    """
    found: dict[str, Path] = {}
    for path in paths:
        if path.is_dir():
            videos = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not videos:
                suffixes = ", ".join(sorted(VIDEO_SUFFIXES))
                raise ValueError(f"no video files ({suffixes}) under {path}")
            found.update((str(v), v) for v in videos)
        else:
            found.setdefault(str(path), path)
    return list(found.values())


@app.command("detect", cls=RegistryHelpCommand)
def detect(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH",
            help="Video files, or folders searched recursively for videos.",
            show_default=False,
        ),
    ],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", "-m", help="Model folder (default: the one `deepfake-detect demo` trained last)."
        ),
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write {'videos': [...], 'model': {...}} here ('-': stdout)."),
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write an HTML report into this folder.")
    ] = None,
    jsonl: Annotated[
        Path | None,
        typer.Option(
            "--jsonl",
            help="Append one JSON line per video as it finishes; a rerun skips the videos already in it.",
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(metavar="ADDRESS", help="Run on Dask: local:N workers, or a scheduler tcp://host:port."),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(help="P(fake) at or above which a video is called fake (default: model's)."),
    ] = option_default("threshold"),
    workers: Annotated[int, typer.Option(min=1, help="Videos analysed in parallel (child processes).")] = 1,
    engine: Annotated[
        str, typer.Option(help="Inference engine: torch, or onnx (an exported folder).")
    ] = "torch",
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.")] = "cpu",
    max_frames: Annotated[
        int, typer.Option(min=option_bounds("max_frames")[0], help="Frames examined per video, at most.")
    ] = option_default("max_frames"),
    stride: Annotated[
        int | None,
        typer.Option(
            min=option_bounds("frame_stride")[0],
            help="Keep every k-th frame (default: model's; adapted to short videos).",
        ),
    ] = option_default("frame_stride"),
    face_detector: Annotated[
        str | None, typer.Option(help="Face detector backend: {face_detectors} (default: the model's).")
    ] = option_default("face_detector"),
    detect_every: Annotated[
        int,
        typer.Option(
            min=option_bounds("detect_every")[0],
            max=option_bounds("detect_every")[1],
            help="Run the face detector on every k-th frame; faces in between get boxes interpolated "
            "along their track (1: every frame).",
        ),
    ] = option_default("detect_every"),
    tracked: Annotated[
        bool,
        typer.Option(
            help="At keyframes look for each face only around where it was (the whole frame every few "
            "keyframes and when a face is lost): less detection time, slightly less exact boxes with "
            "several small faces. Default: scan every keyframe in full.",
        ),
    ] = option_default("tracked"),
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds allowed per video before it is given up.")
    ] = 600,
    threads: Annotated[
        int | None, typer.Option(min=1, help="torch threads per worker (default: CPU cores / workers).")
    ] = None,
    memory_mb: Annotated[
        int,
        typer.Option(
            min=0,
            help="Resident memory a worker process may add for one video, in MB, above what it held once "
            "its model was loaded (0: no limit).",
        ),
    ] = 4096,
    verbose: VerboseOption = 0,
    quiet: QuietOption = False,
) -> None:
    """Tell whether videos are deepfakes: a verdict per video and per face, with a timeline."""
    from deepfake_detect.cluster import ClusterError
    from deepfake_detect.inference import DetectOptions
    from deepfake_detect.inference.jsonl import JsonlError
    from deepfake_detect.infra.isolation import IsolationError

    setup_logging(verbose, quiet)
    if jsonl is not None and (json_out is not None or report is not None):
        fail("--jsonl writes its own output: use it without --json and --report", code=2)
    _check_cluster(cluster)
    try:
        videos = collect_videos(paths)
    except ValueError as exc:
        fail(str(exc), code=2)
    options = DetectOptions(
        threshold=threshold,
        frame_stride=stride,
        max_frames=max_frames,
        face_detector=face_detector,
        detect_every=detect_every,
        tracked=tracked,
    )
    detector = _load_detector(model, engine, device, options)
    settings = BatchSettings(workers, timeout, memory_mb or None, threads, cluster)
    try:
        if jsonl is not None:
            raise typer.Exit(run_jsonl(detector, videos, jsonl, settings))
        results = _run(detector, videos, settings)
    except IsolationError as exc:
        _fail_workers(exc)
    except (ClusterError, JsonlError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted" + ("; run the same command again to continue" if jsonl else ""), code=130)
    _write_outputs(detector, results, json_out, report)
    raise typer.Exit(0 if all(r.answered for r in results) else 1)


def _load_detector(
    model: Path | None, engine: str, device: str, options: DetectOptions
) -> Detector | WorkerDetector:
    """The model given, else the demo's last one; every problem is a usage error (exit 2).

    A model run with the torch or onnx engine, on local workers or a cluster, is only described here,
    from its ``config.json`` (the options resolved against it, once): the workers import torch and load
    the weights (``inference.remote``). Any other engine name is loaded here, to say it is unknown.
    """
    from deepfake_detect.inference.last_model import last_model_path
    from deepfake_detect.inference.remote import WORKER_ENGINES, WorkerDetector
    from deepfake_detect.models.dir_config import ModelDirError
    from deepfake_detect.registry import UnknownNameError

    model_dir = model or last_model_path()
    if model_dir is None:
        fail(NO_MODEL_MESSAGE, code=2)
    try:
        if engine in WORKER_ENGINES:
            return WorkerDetector.open(model_dir, engine=engine, device=device, options=options)
        from deepfake_detect.inference.detector import Detector

        return Detector.load(model_dir, engine=engine, device=device, options=options)
    except (ModelDirError, UnknownNameError, ValueError) as exc:
        fail(str(exc), code=2)


def _write_outputs(
    detector: Detector | WorkerDetector,
    results: list[VideoResult],
    json_out: Path | None,
    report: Path | None,
) -> None:
    """The table (stdout, or stderr when the JSON goes to stdout), the JSON document, the HTML report."""
    _print_table(results, to_stderr=json_out == Path("-"))
    model = detector.model_info()
    for warning in model.get("warnings") or []:  # e.g. a model trained on synthetic data only
        (err_console if json_out == Path("-") else console).print(f"[bold yellow]model: {warning}[/]")
    if json_out is not None:
        _write_json(json_out, {"videos": [r.to_json() for r in results], "model": model})
    if report is not None:
        from deepfake_detect.inference.html_report import write_report

        page = write_report(results, report, model)
        err_console.print(f"report: {page}")


def _fail_workers(exc: IsolationError) -> NoReturn:
    """A model that only its workers load and that does not load is a usage error (exit 2)."""
    from deepfake_detect.inference.workers import model_load_error

    sentence = model_load_error(exc.failure)
    if sentence is not None:
        fail(sentence, code=2)
    fail(f"the worker processes could not run: {exc}")


def _check_cluster(cluster: str | None) -> None:
    from deepfake_detect.cluster import ClusterError, parse_cluster_address

    try:
        if cluster is not None:
            parse_cluster_address(cluster)
    except ClusterError as exc:
        fail(str(exc), code=2)


def _run(
    detector: Detector | WorkerDetector, videos: list[Path], settings: BatchSettings
) -> list[VideoResult]:
    """detect_many with a progress bar (videos done, the file(s) in progress, the last verdict); results
    in the order of ``videos``. Workers take files first in, first out, so the oldest ``workers`` files
    handed out and not finished are the ones being analysed (on a cluster: roughly)."""
    workers = settings.workers
    order = {str(v): i for i, v in enumerate(videos)}
    results: list[VideoResult | None] = [None] * len(videos)
    pending: list[str] = []
    last = ""

    def handed_out() -> Iterator[Path]:
        for video in videos:
            pending.append(str(video))
            yield video

    with make_progress() as progress:
        task = progress.add_task("detecting", total=len(videos), info="starting workers")
        results_iter = detector.detect_many(
            handed_out(),
            workers=workers,
            timeout_s=settings.timeout_s,
            memory_mb=settings.memory_mb,
            threads=settings.threads,
            cluster=settings.cluster,
        )
        for result in results_iter:
            results[order[result.path]] = result
            pending.remove(result.path)
            last = f"{Path(result.path).name} {_verdict(result)}"
            now = ", ".join(Path(p).name for p in pending[:workers]) or "-"
            progress.update(task, advance=1, info=f"now: {now} | last: {last}")
    return [r for r in results if r is not None]


def _verdict(result: VideoResult) -> str:
    if result.ok:
        return f"{result.label} {result.fake_probability:.2f}"
    return str(result.status.value)


def _print_table(results: list[VideoResult], *, to_stderr: bool) -> None:
    """A table of verdicts, then one line per video with an error or a warning, then a summary."""
    out = err_console if to_stderr else console
    table = Table(title="deepfake-detect", title_justify="left")
    table.add_column("video", overflow="fold", ratio=3)
    for name in ("status", "P(fake)", "label", "faces", "frames", "time"):
        table.add_column(name, justify="left" if name in ("status", "label") else "right", no_wrap=True)
    styles = {"fake": "bold red", "real": "green"}
    for result in results:
        label = result.label or ""
        table.add_row(
            Path(result.path).name,
            result.status.value if result.answered else f"[yellow]{result.status.value}[/]",
            "" if result.fake_probability is None else f"{result.fake_probability:.3f}",
            f"[{styles[label]}]{label}[/]" if label else "",
            str(len(result.faces)),
            str(result.info.get("frames_used", "")),
            f"{result.timings.get('total', 0.0):.1f}s",
        )
    out.print(table)
    for result in results:  # the error sentence names the file; warnings do not
        notes = ([result.error] if result.error else []) + [
            f"{Path(result.path).name}: {w}" for w in result.warnings
        ]
        for note in notes:
            out.print(f"[yellow]{note}[/]", highlight=False, soft_wrap=True)
    scored = sum(r.ok for r in results)
    failed = sum(not r.answered for r in results)
    summary = (
        f"{len(results)} video(s): {scored} scored, {len(results) - scored - failed} without a usable face"
    )
    out.print(summary + (f", {failed} unreadable" if failed else ""), highlight=False)


def _write_json(target: Path, payload: dict[str, Any]) -> None:
    text = json.dumps(payload, indent=2) + "\n"
    if target == Path("-"):
        sys.stdout.write(text)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
