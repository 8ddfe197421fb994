"""The options every benchmark takes: ``--quick`` (tiny inputs, for the smoke test; nothing is appended to
RESULTS.md unless ``--record`` is given), ``--record``, ``--cache`` (where generated videos and models are
kept between runs; default ``benchmarks/.cache``, git-ignored) and ``--results``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from benchmarks.recording import BENCH_DIR, RESULTS_PATH

DEFAULT_CACHE = BENCH_DIR / ".cache"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny inputs (smoke test); nothing recorded")
    p.add_argument(
        "--record", action=argparse.BooleanOptionalAction, default=None, help="append to RESULTS.md"
    )
    p.add_argument("--cache", type=Path, default=None, help="folder for generated videos and models")
    p.add_argument("--results", type=Path, default=RESULTS_PATH, help="the RESULTS.md to append to")
    return p


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = p.parse_args(list(argv) if argv is not None else None)
    if args.record is None:
        args.record = not args.quick
    if args.cache is None:
        args.cache = Path(os.environ.get("DFD_BENCH_CACHE", str(DEFAULT_CACHE)))
    args.cache = Path(args.cache) / ("quick" if args.quick else "full")
    args.cache.mkdir(parents=True, exist_ok=True)
    return args
