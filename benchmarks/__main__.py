"""Run every CPU benchmark, one fresh process each: ``python -m benchmarks [--quick] [--only NAME ...]``.

Each prints its ``RATIO`` lines and (unless ``--quick`` / ``--no-record``) appends its figures with the
machine's description to benchmarks/RESULTS.md. ``--wait-quiet LOAD`` first waits (up to
``--max-wait`` minutes) until the 1-minute load average is below LOAD.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence

from benchmarks import host, recording

BENCHMARKS = (
    "detect_vs_naive",
    "pipeline_overhead",
    "memory_vs_length",
    "train_throughput",
    "preprocess_scaling",
    "detect_levers",
    "profile_detect",
    "cluster_overhead",
    "tracked_detect",
    "preprocess_tracked",
    "startup",
    "frame_vs_reference",
)


def gpu_line() -> str:
    import torch

    if torch.cuda.is_available():
        return (
            f"GPU: {torch.cuda.get_device_name(0)} is available, but these benchmarks measure the CPU only."
        )
    return "GPU: none on this machine (torch.cuda.is_available() is False): benchmark 6 (GPU) was not run."


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--record", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    p.add_argument("--wait-quiet", type=float, default=None, metavar="LOAD")
    p.add_argument("--max-wait", type=float, default=40.0, help="minutes")
    args, rest = p.parse_known_args(list(argv) if argv is not None else None)
    record = (not args.quick) if args.record is None else args.record
    if args.wait_quiet is not None:
        host.wait_for_quiet(args.wait_quiet, 60.0 * args.max_wait)
    flags = [*(["--quick"] if args.quick else []), "--record" if record else "--no-record", *rest]
    if record:
        info = host.machine()
        with recording.RESULTS_PATH.open("a", encoding="utf-8") as handle:
            handle.write(f"\n## Run of {info['time']}\n\n- {host.machine_line(info)}\n- {gpu_line()}\n")
    failed = []
    for name in args.only:
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *flags], check=False)
        print(f"== {name}: exit {done.returncode} after {time.perf_counter() - start:.0f} s", flush=True)
        if done.returncode:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
