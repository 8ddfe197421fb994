"""Reading a user's torch checkpoint without running its pickle (SPEC §9).

``torch.load(weights_only=True)`` refuses every global that is not a tensor type or a plain container;
published checkpoints also hold numpy scalars (the DFDC winner stores ``bce_best`` as a numpy float),
so exactly the numpy scalar and dtype globals are allowlisted and nothing else. Any other global is
refused with an error that names it; a truncated or foreign file gets one sentence too.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_detect.models.backbones import WeightsError

__all__ = ["CheckpointError", "allowed_globals", "safe_torch_load", "sha256_file"]

_TRUNCATED = ("failed finding central directory", "truncated", "unexpected EOF", "Ran out of input")
_GLOBAL_IN_MESSAGE = re.compile(r"GLOBAL (\S+)")


class CheckpointError(WeightsError):
    """A checkpoint that cannot be read safely, is damaged, or does not fit the family."""


def allowed_globals() -> list[Any]:
    """The numpy globals a published checkpoint may need: scalar reconstruction and dtypes, nothing else."""
    scalar = np._core.multiarray.scalar  # type: ignore[attr-defined]  # what a pickled numpy scalar names
    dtypes = [type(np.dtype(name)) for name in ("float64", "float32", "float16", "int64", "int32", "bool")]
    return [scalar, np.dtype, *dtypes]


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def safe_torch_load(path: Path | str) -> Any:
    """``torch.load`` with ``weights_only=True`` and the numpy allowlist, on the CPU.

    Raises :class:`CheckpointError` (one sentence) for a missing, truncated or foreign file and for a
    pickle that references any other global (the global is named).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise CheckpointError(_explain(path, exc)) from None


def _explain(path: Path, exc: Exception) -> str:
    text = str(exc)
    found = _GLOBAL_IN_MESSAGE.search(text)
    if found:
        name = found.group(1).rstrip(".")
        return (
            f"{path} refers to the Python object {name}, which is not a tensor, a number or a numpy scalar; "
            "it was not loaded, because unpickling it could run code (only weights_only loading is allowed)"
        )
    if isinstance(exc, EOFError) or any(s in text for s in _TRUNCATED):
        return f"{path} is truncated or damaged (torch.load: {text.splitlines()[0][:160]})"
    first = text.splitlines()[0][:200] if text else type(exc).__name__
    return f"{path} could not be read as a torch checkpoint with weights_only=True ({first})"
