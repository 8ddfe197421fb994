"""``deepfake-detect preprocess``: a dataset of videos -> a clip store of face crops (SPEC §3 'Stores')."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

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
from deepfake_detect.cluster import ClusterError, parse_cluster_address
from deepfake_detect.data.layouts import DatasetError, load_dataset
from deepfake_detect.data.store import StoreError
from deepfake_detect.infra.isolation import IsolationError
from deepfake_detect.preprocess import (
    PreprocessError,
    PreprocessProgress,
    PreprocessSummary,
    parse_shard,
    preprocess_dataset,
)

_MAX_FAILURES_SHOWN = 10

HELP = """Turn a dataset's videos into face-crop clips: OUT/crops/ (JPEG) and OUT/manifest.csv.

Runs WORKERS processes, each with its own face detector. A rerun skips finished videos; killed at any
moment and run again, it ends as an uninterrupted run would. Videos that give no clip are manifest rows
with a status (no_face, too_short, undecodable, ...) and the reason.

Sharding: --shard i/N (0 <= i < N) processes the videos whose CRC32(video_id) mod N is i, so N machines
(e.g. a SLURM array, --shard $SLURM_ARRAY_TASK_ID/N) split a dataset without talking to each other.
The shards may write into one shared OUT folder; each rebuilds OUT/manifest.csv from all finished
videos when it ends, and the last one to end leaves the complete manifest.

Cluster: --cluster local:N runs N Dask worker processes here; --cluster tcp://host:8786 uses a running
Dask scheduler (pip install "deepfake-detect[cluster]"). One task per video; OUT (and the videos) must be
at the same path on every worker. Each finished video is kept at once, so a rerun resumes.
"""


@contextmanager
def interrupted_hint() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        fail("interrupted; finished videos are kept, run the same command again to continue", code=130)


def _info(state: PreprocessProgress) -> str:
    failures = f"[red]{state.failures} failed[/]" if state.failures else "0 failed"
    return f"{state.clips} clips, {failures}"


def _summary_table(summary: PreprocessSummary) -> Table:
    table = Table(title="preprocess summary", show_footer=True)
    table.add_column("status", footer="total")
    table.add_column("videos", justify="right", footer=str(summary.selected))
    for status, count in summary.status_counts.items():
        style = "green" if status == "ok" else "yellow"
        table.add_row(f"[{style}]{status}[/]", str(count))
    return table


def _print_summary(summary: PreprocessSummary) -> None:
    console.print(_summary_table(summary))
    console.print(
        f"clips: {summary.clips}   processed now: {summary.processed}   done before: {summary.skipped}   "
        f"time: {format_seconds(summary.elapsed_s)}"
    )
    for video_id, status, error in summary.failures[:_MAX_FAILURES_SHOWN]:
        console.print(f"  [yellow]{status}[/] {video_id}: {error}", highlight=False)
    if len(summary.failures) > _MAX_FAILURES_SHOWN:
        console.print(f"  ... and {len(summary.failures) - _MAX_FAILURES_SHOWN} more (see the manifest)")
    console.print(f"manifest: {summary.manifest_path}", highlight=False)


@app.command("preprocess", help=HELP, cls=RegistryHelpCommand)
def preprocess_command(
    root: Annotated[Path, typer.Argument(help="Dataset root folder.", show_default=False)],
    out: Annotated[Path, typer.Argument(help="Clip store folder (created if absent).", show_default=False)],
    layout: Annotated[
        str | None,
        typer.Option(
            "--layout",
            "-l",
            help="Dataset layout: {layouts} (default: data.layout of the config, 'dfdc').",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (config: preprocess.workers, 1).")
    ] = None,
    shard: Annotated[str | None, typer.Option(metavar="i/N", help="Process only shard i of N.")] = None,
    limit: Annotated[int | None, typer.Option(min=0, help="Only the first K videos (by id).")] = None,
    cluster: Annotated[
        str | None,
        typer.Option(metavar="ADDRESS", help="Run on Dask: local:N workers, or a scheduler tcp://host:port."),
    ] = None,
    frame_stride: Annotated[
        int | None, typer.Option(min=1, help="Keep every S-th frame (config: clips.frame_stride, 1).")
    ] = None,
    clip_len: Annotated[
        int | None, typer.Option(min=2, help="Frames per clip (config: clips.clip_len, 100).")
    ] = None,
    config: ConfigOption = None,
    overrides: SetOption = None,
    verbose: VerboseOption = 0,
    quiet: QuietOption = False,
) -> None:
    setup_logging(verbose, quiet)
    flags: dict[str, object] = {
        "preprocess.workers": workers,
        "clips.frame_stride": frame_stride,
        "data.layout": layout,
    }
    cfg = load_cli_config(config, overrides, flags)
    if clip_len is not None:  # min_clip_len (an inference setting) may not exceed clip_len
        flags["clips.min_clip_len"] = min(cfg.clips.min_clip_len, clip_len)
        flags["clips.clip_len"] = clip_len
        cfg = load_cli_config(config, overrides, flags)
    with user_errors(PreprocessError):
        shard_pair = parse_shard(shard) if shard is not None else None
    with user_errors(ClusterError):
        if cluster is not None:
            parse_cluster_address(cluster)
    with user_errors(DatasetError):
        listing = load_dataset(cfg.data.layout, root, **cfg.data.layout_options)
    console.print(
        f"{len(listing.records)} videos in {root} (layout {cfg.data.layout})"
        + (f", {len(listing.missing)} listed but missing" if listing.missing else ""),
        highlight=False,
    )
    errors = (PreprocessError, StoreError, IsolationError, ClusterError)
    with user_errors(*errors), interrupted_hint(), make_progress() as bar:
        task = bar.add_task("videos", total=None, info="")

        def on_progress(state: PreprocessProgress) -> None:
            label = f"videos ({state.skipped} done before)" if state.skipped else "videos"
            bar.update(task, description=label, total=state.total, completed=state.done, info=_info(state))

        summary = preprocess_dataset(
            listing.records,
            out,
            cfg,
            workers=cfg.preprocess.workers,
            shard=shard_pair,
            limit=limit,
            progress=on_progress,
            cluster=cluster,
        )
    _print_summary(summary)
