"""Process-wide runtime settings applied by entry points (the CLI and isolated workers), never at import."""

from __future__ import annotations

import ctypes
import logging
import os
import sys

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc's malloc.h)


def tune_malloc() -> bool:
    """Keep freed memory in glibc's heap instead of returning it to the OS after every large tensor.

    With glibc's defaults, tensors above the mmap threshold (at most 32 MB) are mapped and unmapped on every
    forward pass, and their pages fault in again each time; on virtual machines that multiplies the CPU time
    (figures: benchmarks/RESULTS.md, "Figures behind the code"). Freed memory is reused by the next pass
    instead, so peak RSS is unchanged.
    Returns False where the C library is not glibc (nothing changes then).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        done = libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 31)
    except (OSError, AttributeError):
        return False
    logger.debug("glibc malloc tuned: %s", bool(done))
    return bool(done)


CPU_KERNEL_VARIABLES = {
    # ATen's vectorised kernels, oneDNN's JIT kernels (convolutions, MTCNN) and MKL's BLAS (matmul, LSTM)
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"},
}


def pin_cpu_kernels(level: str) -> bool:
    """Make torch use the same float32 kernels on every x86 CPU that has ``level`` (``native``: no pin).

    The libraries pick AVX2 or AVX-512 code from the CPU flags, and the two sum in different orders, so a
    training run's numbers differ in the last bits from one CPU to another and then diverge. Pinning to
    AVX2 (which every x86-64 CPU of the last decade has) removes that difference. The libraries read these
    variables once, when they first run a kernel, so this must run before torch is imported: it returns
    False (and changes nothing) when torch is already imported or ``level`` is ``native``. Variables the
    user set are kept. Child processes inherit the pin.
    """
    if level == "native":
        return False
    if level not in CPU_KERNEL_VARIABLES:
        raise ValueError(
            f"unknown CPU kernel level {level!r}; known: native, {', '.join(CPU_KERNEL_VARIABLES)}"
        )
    if "torch" in sys.modules:
        logger.warning("torch is already imported, so its CPU kernels cannot be pinned to %s any more", level)
        return False
    for name, value in CPU_KERNEL_VARIABLES[level].items():
        os.environ.setdefault(name, value)
    logger.debug("CPU kernels pinned to %s", level)
    return True


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its children that have ended (seconds).

    Unlike wall time it does not grow when other processes compete for the cores, so stage costs measured
    on a shared machine stay comparable.
    """
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
