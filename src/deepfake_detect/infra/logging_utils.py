"""Logging set-up used by the CLI (library modules only call ``logging.getLogger``)."""

from __future__ import annotations

import logging


def configure_logging(verbosity: int = 0) -> None:
    """Route log records through rich at INFO (verbosity 0), DEBUG (>= 1) or WARNING (< 0)."""
    from rich.logging import RichHandler

    level = logging.INFO if verbosity == 0 else (logging.DEBUG if verbosity > 0 else logging.WARNING)
    logging.basicConfig(
        level=level,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(rich_tracebacks=False, show_path=False)],
        force=True,
    )
    for noisy in ("lightning", "lightning.pytorch", "pytorch_lightning", "PIL", "matplotlib", "fsspec"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
