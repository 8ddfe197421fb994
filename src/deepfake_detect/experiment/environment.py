"""What an experiment ran on, so that two reports can be compared: code, packages, CPU, threads, digests.

Training is chaotic: a difference in the last bit of one float32 sum grows, over a few hundred optimiser
steps, into a different model. float32 kernels are chosen from the CPU's instruction set (ATen and oneDNN
dispatch to AVX2 or AVX-512 code that sums in a different order), so the same seed on two CPUs gives
different numbers even in float32; bfloat16 autocast would change them far more. The report therefore
records the instruction set in use, the precision and the thread counts next to digests of the data, and
two runs agree exactly only where all of these agree.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from deepfake_detect.config import Config
from deepfake_detect.data.store import ClipStore

logger = logging.getLogger(__name__)

PACKAGES = ("torch", "torchvision", "numpy", "av", "facenet-pytorch", "lightning", "timm", "scikit-learn")
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_CBWR",
)


def code_revision() -> str:
    """``git describe --always --dirty`` of the package's checkout, else the installed package version."""
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        done = None
    if done is not None and done.returncode == 0 and done.stdout.strip():
        return f"git {done.stdout.strip()}"
    return f"package {package_version('deepfake-detect')}"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_description() -> dict[str, Any]:
    """CPU model name and the instruction-set flags that change float results (Linux /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    return {"model": model, "cores": os.cpu_count(), "flags": {f: f in flags for f in CPU_FLAGS}}


def torch_runtime() -> dict[str, Any]:
    """Thread counts, the ATen kernel level in use and whether oneDNN has native bf16 kernels."""
    import torch

    return {
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "env": {name: os.environ.get(name, "") for name in _THREAD_VARIABLES},
    }


def tree_digest(root: Path, patterns: tuple[str, ...] = ("*",)) -> str:
    """sha256 over the relative paths and bytes of the files under ``root`` matching ``patterns``."""
    root = Path(root)
    files = sorted({p for pattern in patterns for p in root.rglob(pattern) if p.is_file()})
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"sha256:{digest.hexdigest()[:16]} ({len(files)} files)"


def environment(
    precision: dict[str, str], digests: dict[str, str] | None = None, revision: str | None = None
) -> dict[str, Any]:
    """The report's environment section (``precision``: stage -> precision actually used; ``revision``:
    the code revision taken when the run started, else now)."""
    return {
        "code_revision": revision or code_revision(),
        "python": platform.python_version(),
        "packages": {name: package_version(name) for name in PACKAGES},
        "cpu": cpu_description(),
        "torch": torch_runtime(),
        "precision": dict(precision),
        "digests": dict(digests or {}),
    }


def experiment_environment(
    config: Config,
    store: ClipStore,
    data_digests: Mapping[str, str] | None = None,
    *,
    revision: str | None = None,
) -> dict[str, Any]:
    """An experiment's environment, with the precision each stage of experiment.runner really uses."""
    from deepfake_detect.training.trainer import resolve_precision

    precision = {
        "extractor training": resolve_precision(config.extractor.precision, "auto"),
        "embedding": "32",  # the runner embeds with embed_clips' default
        "heads": "32",
    }
    digests = {
        **(data_digests or {}),
        "clip manifest": tree_digest(store.root, ("manifest.*",)),
        "clip crops": tree_digest(store.crops_root),
    }
    return environment(precision, digests, revision)
