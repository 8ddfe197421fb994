"""``detect --jsonl OUT``: a resumable batch, one JSON line per video as it finishes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deepfake_detect.cli.common import err_console, make_progress

if TYPE_CHECKING:
    from deepfake_detect.inference import Detector
    from deepfake_detect.inference.remote import WorkerDetector


@dataclass(frozen=True)
class BatchSettings:
    """How ``detect`` runs its workers (the options it shares with the ``--json`` path)."""

    workers: int
    timeout_s: float
    memory_mb: int | None
    threads: int | None
    cluster: str | None


def run_jsonl(
    detector: Detector | WorkerDetector, videos: list[Path], out: Path, settings: BatchSettings
) -> int:
    """Append a line per video not yet in ``out``; returns the exit code over every video asked for."""
    from deepfake_detect.inference import ANSWERED_STATUSES
    from deepfake_detect.inference.jsonl import jsonl_writer, read_jsonl

    with jsonl_writer(out) as writer:  # the lock first: a second run must not repair our file
        done = read_jsonl(out, repair=True)
        todo = [v for v in videos if str(v) not in done]
        statuses = [done[str(v)].status for v in videos if str(v) in done]
        failed = 0
        start = time.monotonic()
        with make_progress() as progress:
            task = progress.add_task("detecting", total=len(todo), info=f"{len(statuses)} done before")
            results = detector.detect_many(
                todo,
                workers=settings.workers,
                timeout_s=settings.timeout_s,
                memory_mb=settings.memory_mb,
                threads=settings.threads,
                cluster=settings.cluster,
            )
            for count, result in enumerate(results, start=1):
                writer.write(result)
                statuses.append(result.status.value)
                failed += not result.answered
                rate = count / max(time.monotonic() - start, 1e-9)
                info = f"{failed} failed, {rate:.2f} videos/s, {len(videos) - len(todo)} done before"
                progress.update(task, advance=1, info=info)
    answered = {s.value for s in ANSWERED_STATUSES}
    unread = sum(s not in answered for s in statuses)
    err_console.print(
        f"{len(statuses)} video(s) in {out}: {statuses.count('ok')} scored, "
        f"{len(statuses) - statuses.count('ok') - unread} without a usable face, {unread} unreadable; "
        f"{len(videos) - len(todo)} were done before",
        highlight=False,
    )
    return 0 if unread == 0 else 1
