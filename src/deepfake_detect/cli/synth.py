"""``deepfake-detect synth``: write the built-in synthetic benchmark (SPEC §6) to a folder."""

from __future__ import annotations

import time
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from deepfake_detect.cli.app import app
from deepfake_detect.cli.common import (
    QuietOption,
    VerboseOption,
    console,
    fail,
    format_seconds,
    make_progress,
    setup_logging,
    user_errors,
)
from deepfake_detect.data.synth import SynthError, generate_dataset

HELP = """Generate labelled synthetic deepfake videos: OUT/*.mp4, OUT/metadata.json (DFDC train format,
read by --layout dfdc) and OUT/synth.json (ground truth: face box and swapped region per frame).

Real face photographs (scikit-image, matplotlib) move through scenes; every video gets a face-swap
composite, held constant in REAL videos and jittering per frame in FAKE ones (track 'temporal': a single
frame does not tell them apart). Track 'spatial' adds per-frame-visible seams to fakes; 'both' alternates.
"""


class TrackChoice(StrEnum):
    temporal = "temporal"
    spatial = "spatial"
    both = "both"


def parse_size(text: str) -> tuple[int, int]:
    """'320x240' -> (320, 240)."""
    parts = text.lower().replace(" ", "").split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise typer.BadParameter(f"expected WIDTHxHEIGHT such as 320x240, got {text!r}")
    return int(parts[0]), int(parts[1])


@app.command("synth", help=HELP)
def synth_command(
    out: Annotated[Path, typer.Argument(help="Output folder (created if absent).", show_default=False)],
    videos: Annotated[int, typer.Option(min=1, help="Number of videos (pairs of REAL + FAKE).")] = 20,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same dataset.")] = 0,
    track: Annotated[TrackChoice, typer.Option(help="What tells a fake apart.")] = TrackChoice.temporal,
    size: Annotated[str, typer.Option(metavar="WxH", help="Base frame size (even).")] = "320x240",
    frames: Annotated[int, typer.Option(min=2, help="Frames per video (room for 100-frame clips).")] = 150,
    fps: Annotated[float, typer.Option(help="Frame rate.")] = 25.0,
    jitter: Annotated[
        float, typer.Option(min=0.0, help="Per-frame jitter of fakes (difficulty: smaller is harder).")
    ] = 1.0,
    vary_size: Annotated[bool, typer.Option(help="Sometimes 0.8x or 1.25x the base size.")] = True,
    inter_frames: Annotated[
        bool, typer.Option(help="P-frames as in real footage (adds a weak per-frame codec cue).")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Write into a folder that has a metadata.json.")] = False,
    verbose: VerboseOption = 0,
    quiet: QuietOption = False,
) -> None:
    setup_logging(verbose, quiet)
    width, height = parse_size(size)
    start = time.perf_counter()
    with user_errors(SynthError, FileExistsError, OSError), make_progress() as bar:
        task = bar.add_task("videos", total=videos, info="")
        records = generate_dataset(
            out,
            videos=videos,
            seed=seed,
            track=track.value,
            size=(width, height),
            frames=frames,
            fps=fps,
            progress=lambda done: bar.update(task, completed=done),
            jitter=jitter,
            vary_size=vary_size,
            inter_frames=inter_frames,
            overwrite=overwrite,
        )
    if not records:
        fail("no videos were written")
    labels = Counter(r.label.name if r.label is not None else "?" for r in records)
    console.print(
        f"wrote {len(records)} videos ({labels['REAL']} real, {labels['FAKE']} fake, track {track.value}) "
        f"to {out} in {format_seconds(time.perf_counter() - start)}; labels: {out / 'metadata.json'}",
        highlight=False,
    )
