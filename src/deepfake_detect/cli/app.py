"""Entry point: one typer app; each command lives in its own module of this package."""

from __future__ import annotations

import importlib
import os
import sys

import typer

from deepfake_detect.infra.runtime import tune_malloc

app = typer.Typer(
    name="deepfake-detect",
    help="Detect deepfake videos: face clips, a hinge-trained extractor and a temporal LSTM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Detect deepfake videos: face clips, a hinge-trained extractor and a temporal LSTM."""
    # A callback keeps ``app`` a command group however many command modules are imported,
    # so ``deepfake-detect NAME ...`` parses the same in tests that import one command only.


# Modules that register commands on ``app`` when imported (kept in the order of the help text).
COMMAND_MODULES: tuple[str, ...] = (
    "synth",
    "preprocess",
    "train",
    "experiment",
    "detect",
    "export",
    "serve",
    "models",
)


def _load_commands(argv: list[str] | None = None) -> None:
    """Import the command modules; only the one named ``argv[1]`` when it registers that command, so
    that ``deepfake-detect detect`` does not import what ``train`` or ``synth`` need (pandas, ...)."""
    wanted = argv[1] if argv is not None and len(argv) > 1 else None
    if wanted in COMMAND_MODULES:
        importlib.import_module(f"deepfake_detect.cli.{wanted}")
        if wanted in _registered_names():
            return
    for name in COMMAND_MODULES:
        importlib.import_module(f"deepfake_detect.cli.{name}")


def _registered_names() -> set[str]:
    commands = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    return {name for name in commands if name}


def _runtime_defaults() -> None:
    """Process-wide settings that must be in place before torch (and its OpenMP runtime) is imported.

    OpenMP threads that spin while they wait for work make torch many times slower as soon as another process
    competes for the cores (figures: benchmarks/RESULTS.md, "Figures behind the code"); passive waiting costs
    nothing when the cores are free. A value the user set is kept.
    glibc's malloc keeps large freed blocks (see ``runtime.tune_malloc``).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    tune_malloc()


def main() -> None:
    """Console-script entry point."""
    _runtime_defaults()
    _load_commands(sys.argv)
    app()


if __name__ == "__main__":  # ``python -m deepfake_detect.cli.app``
    # Commands register on the importable module's ``app``, not on this ``__main__`` copy.
    from deepfake_detect.cli.app import main as _main

    _main()
