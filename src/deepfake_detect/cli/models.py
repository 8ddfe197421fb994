"""``import-model`` and ``models``: published detectors into model directories, and what a directory holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from deepfake_detect.cli.app import app
from deepfake_detect.cli.common import QuietOption, VerboseOption, console, fail, setup_logging
from deepfake_detect.registry import UnknownNameError

IMPORT_HELP = """Import published checkpoints (downloaded by you) into a model directory for detect and serve.

Each file is read with torch.load(weights_only=True), allowing numpy scalars and nothing else, so a
checkpoint cannot run code; the architecture is inferred from the tensor shapes, every key and shape is
checked, and the weights are written as safetensors with the family's recipe and a card (licence, source
files and their sha256). Several checkpoints of one family form an ensemble (dfdc-winner: its seven
files). See `deepfake-detect models` for the families."""


@app.command("import-model", help=IMPORT_HELP)
def import_model_command(
    family: Annotated[str, typer.Argument(help="Model family (see `deepfake-detect models`).")],
    checkpoints: Annotated[list[Path], typer.Argument(help="Checkpoint files.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.", show_default=False)],
    recipe: Annotated[Path | None, typer.Option("--recipe", help="timm-frame: the recipe YAML file.")] = None,
    verbose: VerboseOption = 0,
    quiet: QuietOption = False,
) -> None:
    setup_logging(verbose, quiet)
    from deepfake_detect.models.importers import CheckpointError, import_model
    from deepfake_detect.models.io import ModelDirError

    try:
        written = import_model(family, list(checkpoints), out, recipe=recipe)
    except UnknownNameError as exc:
        fail(str(exc), code=2)
    except (CheckpointError, ModelDirError, ValueError) as exc:
        fail(f"import refused: {exc}", code=1)
    except OSError as exc:
        fail(f"cannot write {out}: {exc}", code=1)
    console.print(f"imported {len(checkpoints)} {family} checkpoint(s) into {written}")


@app.command("models", help="List the importable model families, or show a model directory's card.")
def models_command(
    model_dir: Annotated[Path | None, typer.Argument(help="A model directory.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    from deepfake_detect.models.importers import IMPORTERS, load_importers
    from deepfake_detect.models.io import ModelDirError

    if model_dir is None:
        load_importers()
        families = [
            {
                "family": n,
                "summary": IMPORTERS.get(n).summary,
                "suits": IMPORTERS.get(n).suits,
                "licence": IMPORTERS.get(n).licence,
            }
            for n in IMPORTERS.names()
        ]
        _show(families, as_json)
        return
    from deepfake_detect.inference.model_card import describe_model_dir

    try:
        _show(describe_model_dir(model_dir), as_json)
    except ModelDirError as exc:
        fail(str(exc), code=2)


def _show(data: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    rows = data if isinstance(data, list) else [data]
    for row in rows:
        for key, value in row.items():
            text = value if isinstance(value, str) else json.dumps(value)
            console.print(f"[bold]{key}[/bold]: {text}", highlight=False)
        console.print("")
