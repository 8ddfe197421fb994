"""Measured ratios against their targets: the ``RATIO`` lines a benchmark prints and RESULTS.md sections."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from benchmarks.host import load_average, machine, machine_line

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_PATH = BENCH_DIR / "RESULTS.md"
RATIO_PREFIX = "RATIO"


@dataclass
class Ratio:
    """One measured ratio and its target (``at_least``: value >= target, else value <= target)."""

    benchmark: str
    case: str
    value: float
    target: float
    kind: Literal["at_least", "at_most"]
    meaning: str
    details: dict[str, Any] = field(default_factory=dict)
    load: str = field(default_factory=lambda: f"{load_average()[0]:.2f}")

    @property
    def met(self) -> bool:
        ok = self.value >= self.target if self.kind == "at_least" else self.value <= self.target
        return bool(ok and math.isfinite(self.value))

    @property
    def verdict(self) -> str:
        if self.met:
            return "met"
        if not math.isfinite(self.value):
            return "not measured"
        gap = (self.target / self.value if self.kind == "at_least" else self.value / self.target) - 1
        return f"missed by {100 * gap:.0f}%"

    def line(self) -> str:
        op = ">=" if self.kind == "at_least" else "<="
        return (
            f"{RATIO_PREFIX} {self.benchmark}[{self.case}] = {self.value:.3g} "
            f"(target {op} {self.target:g}: {self.verdict}) -- {self.meaning}; load {self.load}"
        )


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def report(
    benchmark: str,
    title: str,
    ratios: Sequence[Ratio],
    notes: Sequence[str],
    *,
    record: bool,
    start_info: dict[str, Any],
    results_path: Path = RESULTS_PATH,
) -> None:
    """Print the ratio lines; with ``record``, append a section to RESULTS.md."""
    for ratio in ratios:
        print(ratio.line(), flush=True)
        for key, value in ratio.details.items():
            print(f"    {key}: {fmt(value)}")
    for note in notes:
        print(f"  note: {note}")
    if record:
        append_results(benchmark, title, ratios, notes, start_info, results_path)
        print(f"appended to {results_path}")


def append_results(
    benchmark: str,
    title: str,
    ratios: Sequence[Ratio],
    notes: Sequence[str],
    start_info: dict[str, Any],
    results_path: Path = RESULTS_PATH,
) -> None:
    end = machine()
    lines = [
        f"\n### {benchmark}: {title}\n",
        f"- machine: {machine_line(start_info)}",
        f"- load average at the end: {end['load']}",
        "",
        "| case | ratio | target | verdict | load (1 min) | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for r in ratios:
        op = ">=" if r.kind == "at_least" else "<="
        lines.append(
            f"| {r.case} | {r.value:.3g} | {op} {r.target:g} | {r.verdict} | {r.load} | {r.meaning} |"
        )
    for r in ratios:
        if r.details:
            lines.append(f"\n{r.case}: " + "; ".join(f"{k} = {fmt(v)}" for k, v in r.details.items()))
    lines += [f"\n- {note}" for note in notes]
    if not results_path.exists():
        results_path.write_text("# Benchmark results\n", encoding="utf-8")
    with results_path.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
