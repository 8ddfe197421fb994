"""``evaluate``, ``experiment`` and ``demo``: metrics of predictions, the paper's protocol, the demo."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from deepfake_detect.cli.app import app
from deepfake_detect.cli.common import (
    ConfigOption,
    QuietOption,
    RegistryHelpCommand,
    SetOption,
    VerboseOption,
    console,
    fail,
    format_seconds,
    load_cli_config,
    make_progress,
    setup_logging,
    user_errors,
)
from deepfake_detect.experiment.report_text import fmt, pm
from deepfake_detect.infra.runtime import pin_cpu_kernels

if TYPE_CHECKING:
    from deepfake_detect.evaluation.evaluate import EvaluationResult


def _errors() -> tuple[type[BaseException], ...]:
    """The user-facing errors of these commands (imported when a command runs: they pull in torch)."""
    from deepfake_detect.data.layouts import DatasetError
    from deepfake_detect.data.store import StoreError
    from deepfake_detect.evaluation.evaluate import EvaluationError
    from deepfake_detect.experiment.prepare import DataPreparationError
    from deepfake_detect.experiment.runner import ExperimentError
    from deepfake_detect.experiment.splits import SplitError
    from deepfake_detect.models.io import ModelDirError, WeightsError
    from deepfake_detect.preprocess import PreprocessError

    return (
        DataPreparationError,
        DatasetError,
        EvaluationError,
        ExperimentError,
        ModelDirError,
        PreprocessError,
        SplitError,
        StoreError,
        WeightsError,
        FileExistsError,
    )


_METRICS = [
    ("accuracy", "accuracy"),
    ("log_loss", "log loss"),
    ("roc_auc", "ROC AUC"),
    ("average_precision", "AP"),
    ("eer", "EER"),
]


@contextmanager
def _stage_progress() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar whose description is the current stage."""
    with make_progress() as bar:
        task = bar.add_task("starting", total=None, info="")

        def update(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=max(total, 1))

        yield update


def _model_line(model: dict[str, Any]) -> str:
    """Which model produced the predictions, in one line (``metrics.json``'s ``model``)."""
    if model.get("kind") == "frame":
        n = model["members"]
        family = f"{model['family']} " if model.get("family") else ""
        members = (
            f"{n} members; clip = mean over its crops, then over the members"
            if n != 1
            else ("1 member; clip = mean over its crops")
        )
        return f"model: {model['path']} ({family}frame model {model['arch']}, {members})"
    return f"model: {model['path']} ({model['backbone']} + {model['head']})"


def _metrics_table(result: EvaluationResult) -> Table:
    table = Table(title=f"evaluation (video level: {result.aggregation})")
    table.add_column("metric")
    table.add_column("clips", justify="right")
    table.add_column("videos", justify="right")
    for key, name in [("n", "n"), ("n_fake", "fake"), *_METRICS]:
        table.add_row(
            name,
            fmt(result.clip[key], 0 if key.startswith("n") else 3),
            fmt(result.video[key], 0 if key.startswith("n") else 3),
        )
    return table


@app.command("evaluate", cls=RegistryHelpCommand)
def evaluate_command(
    source: Annotated[Path, typer.Argument(help="A predictions CSV, or a clip store folder (with --model).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("evaluation"),
    model: Annotated[
        Path | None, typer.Option(help="Model folder (default: the one the demo trained last).")
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="Only clips whose manifest split is this (e.g. test).")
    ] = None,
    aggregation: Annotated[
        str | None,
        typer.Option(help="Video-level rule: {aggregations} (config: evaluation.aggregation)."),
    ] = None,
    config: ConfigOption = None,
    overrides: SetOption = None,
    verbose: VerboseOption = 0,
    quiet: QuietOption = False,
) -> None:
    """Clip- and video-level metrics (accuracy, log loss, ROC AUC, AP, EER) with ROC and histogram PNGs.

    Writes OUT/metrics.json, OUT/predictions.csv, OUT/video_predictions.csv, OUT/roc.png and
    OUT/score_histogram.png. Given a clip store, the model predicts its labelled clips first: a model this
    tool trained, or an imported frame model (import-model), whose clip P(fake) is the mean of its per-crop
    P(fake) over the clip's crops (the store's crops resized by its recipe), then over its members;
    metrics.json's "model" and the table say which model it was.
    """
    from deepfake_detect.data.store import ClipStore
    from deepfake_detect.evaluation.evaluate import (
        evaluate_predictions,
        labelled_rows,
        load_predictions,
        model_summary,
        predict_with_model,
    )
    from deepfake_detect.inference.last_model import last_model_path

    setup_logging(verbose, quiet)
    cfg = load_cli_config(config, overrides, {"evaluation.aggregation": aggregation})
    ev = cfg.evaluation
    with user_errors(*_errors()):
        described: dict[str, Any] | None = None
        if source.is_file():
            table = load_predictions(source)
        elif source.is_dir():
            model_dir = model or last_model_path()
            if model_dir is None:
                fail("a clip store needs --model MODEL_DIR (no model from the demo was found either)")
            described = model_summary(model_dir)  # an unusable directory fails here, before any work
            store = ClipStore(source)
            table = predict_with_model(
                model_dir, store, labelled_rows(store, split), out / "cache", progress=not quiet
            )
        else:
            fail(f"{source} does not exist")
        result = evaluate_predictions(
            table, out, eps=ev.eps, threshold=ev.threshold, aggregation=ev.aggregation, model=described
        )
    if result.model is not None:
        console.print(_model_line(result.model), highlight=False)
    console.print(_metrics_table(result))
    console.print(f"written to {out}: " + ", ".join(p.name for p in result.paths.values()), highlight=False)


def _headline(report: dict[str, Any]) -> Table:
    t1 = report["table1"]
    n = len(t1["clip"]["accuracy"]["values"])
    table = Table(
        title=f"{t1['extractor']} + {t1['head']}: {n} test split(s), split by "
        f"{report['settings']['split_by']} (mean ± std)"
    )
    table.add_column("model")
    for _, name in _METRICS:
        table.add_column(name, justify="right")
    table.add_row(f"Table 1 ({t1['head']}, clips)", *[pm(t1["clip"][k]) for k, _ in _METRICS])
    table.add_row(f"Table 1 ({t1['head']}, videos)", *[pm(t1["video"][k]) for k, _ in _METRICS])
    for row in report["table3"]["rows"][1:]:
        table.add_row(f"Table 3: {row['head']} (clips)", *[pm(row["clip"][k]) for k, _ in _METRICS])
    for row in report["table2"]["rows"]:
        if not row["main"]:
            table.add_row(f"Table 2: {row['backbone']} (clips)", *[pm(row["clip"][k]) for k, _ in _METRICS])
    for row in (report.get("frame_model") or {}).get("rows", []):
        table.add_row(f"frame model: {row['label']} (clips)", *[pm(row["clip"][k]) for k, _ in _METRICS])
    return table


def _print_report(report: dict[str, Any], report_dir: Path, model_dir: Path | None) -> None:
    console.print(_headline(report))
    for sentence in report.get("conclusions", []):
        console.print(f"- {sentence}", highlight=False)
    console.print(f"report: {report_dir / 'report.md'}", highlight=False)
    if model_dir is not None:
        console.print(f"model:  {model_dir}", highlight=False)


@app.command("experiment")
def experiment_command(
    config_path: Annotated[Path, typer.Argument(help="Experiment config (e.g. configs/paper.yaml).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("experiment-out"),
    overrides: SetOption = None,
    verbose: VerboseOption = 0,
    quiet: QuietOption = False,
) -> None:
    """The paper's experiments in one command: clips -> repeated splits -> Tables 1-3 and figures 4-5.

    Writes OUT/clips (the clip store, unless data.clips_dir is set), OUT/synth (with data.synth), OUT/report
    (report.md, report.json, PNGs, a folder per repetition) and OUT/model (the final model).
    """
    setup_logging(verbose, quiet)
    cfg = load_cli_config(config_path, overrides)
    pin_cpu_kernels(cfg.experiment.cpu_kernels)  # before torch is imported
    from deepfake_detect.experiment.cross_track import cross_track_rows
    from deepfake_detect.experiment.prepare import prepare_clips, robustness_rows
    from deepfake_detect.experiment.report import write_report
    from deepfake_detect.experiment.runner import run_experiment

    start = time.perf_counter()
    with user_errors(*_errors()), _stage_progress() as progress:
        prepared = prepare_clips(cfg, out, progress=progress)
        result = run_experiment(
            cfg,
            prepared.store,
            out / "report",
            model_dir=out / "model",
            progress=progress,
            data_digests=prepared.digests,
        )
        extra: dict[str, Any] = {"data_timings_s": prepared.timings, "data_cpu_s": prepared.cpu_timings}
        extra["robustness"] = robustness_rows(cfg, prepared, result, out)
        if cross := cross_track_rows(cfg, prepared.store, result, out):
            extra["cross_track"] = cross
        report = write_report(result, out / "report", extra=extra)
    _print_report(report, out / "report", out / "model")
    console.print(f"total time: {format_seconds(time.perf_counter() - start)}", highlight=False)


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("demo-out"),
    videos: Annotated[
        int | None, typer.Option(min=2, help="Synthetic videos (config: data.synth.videos).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of data and training (config: seed).")] = None,
    overrides: SetOption = None,
    verbose: VerboseOption = 0,
    quiet: QuietOption = False,
) -> None:
    """The whole paper pipeline on built-in synthetic videos, in minutes on a CPU.

    Synthetic temporal benchmark, face clips, hinge-trained extractor, LSTM / MLP / frame-MLP heads,
    six random test splits: the report is OUT/report/report.md. The final model goes to OUT/model and
    becomes the default model of `detect`.
    """
    setup_logging(verbose, quiet)
    demo_yaml = Path(str(resources.files("deepfake_detect").joinpath("configs", "demo.yaml")))
    pin_cpu_kernels(load_cli_config(demo_yaml, overrides).experiment.cpu_kernels)  # before torch is imported
    from deepfake_detect.demo import run_demo

    with user_errors(*_errors()), _stage_progress() as progress:
        result = run_demo(out, videos=videos, seed=seed, overrides=overrides, progress=progress)
    _print_report(result.report, result.report_dir, result.model_dir)
    times = Table(title="wall time by stage")
    times.add_column("stage")
    times.add_column("time", justify="right")
    for stage, seconds in result.timings.items():
        times.add_row(stage, format_seconds(seconds))
    times.add_row("[bold]total[/]", f"[bold]{format_seconds(result.total_s)}[/]")
    console.print(times)
    console.print(f"`detect` will use this model by default (pointer: {result.pointer})", highlight=False)
