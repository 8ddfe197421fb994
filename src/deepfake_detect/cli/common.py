"""Helpers shared by the command modules: options, config loading, errors, progress bars."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from typer.core import TyperCommand

from deepfake_detect.config import Config, ConfigError, load_config
from deepfake_detect.infra.logging_utils import configure_logging
from deepfake_detect.registry import UnknownNameError

console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file (see configs/); flags and --set override it."),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="SECTION.KEY=VALUE",
        help="Override one config value, e.g. --set faces.detector=haar (repeatable; YAML values).",
    ),
]
VerboseOption = Annotated[
    int, typer.Option("--verbose", "-v", count=True, help="More log output (-v debug).")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors in the log.")]


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    configure_logging(-1 if quiet else verbose)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error (no traceback) and leave with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Turn the given exception types (plus config and unknown-name errors) into a clean CLI error."""
    handled: tuple[type[BaseException], ...] = (ConfigError, UnknownNameError, *kinds)
    try:
        yield
    except handled as exc:
        fail(str(exc), code=2 if isinstance(exc, ConfigError) else 1)


def flag_overrides(flags: Mapping[str, Any]) -> list[str]:
    """``{"clips.clip_len": 8, "x.y": None}`` -> ``["clips.clip_len=8"]`` (None = flag not given)."""
    result = []
    for key, value in flags.items():
        if value is None:
            continue
        text = str(value) if isinstance(value, Path) else value
        result.append(f"{key}={json.dumps(text)}")
    return result


def load_cli_config(
    config_path: Path | None, overrides: list[str] | None, flags: Mapping[str, Any] | None = None
) -> Config:
    """Defaults <- YAML file <- ``--set`` overrides <- dedicated flags (the most specific wins)."""
    with user_errors():
        return load_config(config_path, [*(overrides or []), *flag_overrides(flags or {})])


def make_progress() -> Progress:
    """A progress bar on stderr: spinner, description, bar, done/total, a free ``info`` field, time, ETA."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60.0)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02.0f}s"
    if minutes:
        return f"{minutes}m{secs:04.1f}s"
    return f"{secs:.1f}s"


# Help-text placeholders -> (module, registry) whose names replace them when a help page is shown: the
# lists are read from the registries, and a registry's module (torch, for the heads) is imported only then.
REGISTRY_PLACEHOLDERS: dict[str, tuple[str, str]] = {
    "{heads}": ("deepfake_detect.models.heads", "SEQUENCE_HEADS"),
    "{face_detectors}": ("deepfake_detect.faces.detectors.base", "FACE_DETECTORS"),
    "{aggregations}": ("deepfake_detect.evaluation.aggregation", "AGGREGATIONS"),
    "{layouts}": ("deepfake_detect.data.layouts.base", "LAYOUTS"),
}


def fill_registry_names(text: str) -> str:
    """``text`` with each placeholder of :data:`REGISTRY_PLACEHOLDERS` replaced by its registry's names."""
    import importlib

    for token, (module, attribute) in REGISTRY_PLACEHOLDERS.items():
        if token in text:
            names = getattr(importlib.import_module(module), attribute).names()
            text = text.replace(token, ", ".join(names))
    return text


class RegistryHelpCommand(TyperCommand):
    """A command whose help texts may name registries by placeholder (``{heads}`` ...), filled in when
    the help page is shown (``@app.command(..., cls=RegistryHelpCommand)``)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:  # typer's own (vendored) click types
        targets: list[Any] = [self, *self.params]
        templates = self.__dict__.setdefault("_help_templates", {})  # the texts with their placeholders
        for target in targets:
            text = templates.setdefault(id(target), getattr(target, "help", None))
            if isinstance(text, str):
                target.help = fill_registry_names(text)
        super().format_help(ctx, formatter)
