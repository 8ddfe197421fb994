"""Writing files so that a reader never sees half of one: atomic writes, JSON documents, safetensors.

Every writer of the package that replaces a file goes through :func:`atomic_path`: the data is written to
a hidden temporary file in the target's folder (same file system, so the final rename is atomic) and
renamed over the target only when writing succeeded; on any failure the temporary file is removed and
the target is left as it was. Heavy libraries (torch, safetensors) are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["atomic_path", "json_safe", "save_tensors", "write_json", "write_text"]


def _reserve_temp(target: Path, suffix: str) -> Path:
    """Create an empty, hidden, uniquely named file beside ``target`` (ordinary permissions: the umask's)."""
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {target}")


@contextlib.contextmanager
def atomic_path(target: Path | str, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` if the block succeeds.

    The folder is created if needed. The temporary file exists (empty) when the block starts; the block
    writes it by name (``savefig(tmp)``, ``to_csv(tmp)``, ``open(tmp, "wb")`` ...). If the block raises,
    the temporary file is removed and ``target`` is untouched. The temporary name is hidden and ends in
    ``suffix``: ``.tmp`` keeps it out of globs such as ``*.json``; a writer that picks its format from
    the name (a video muxer) passes e.g. ``.tmp.mp4``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _reserve_temp(target, suffix)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(target: Path | str, text: str) -> Path:
    """Write UTF-8 ``text`` (``\\n`` line ends, untranslated) to ``target`` atomically; returns ``target``."""
    target = Path(target)
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    return target


def json_safe(value: Any, *, verbatim_lists: bool = False) -> Any:
    """A value made JSON-ready: numpy scalars/arrays -> Python values, tuples -> lists, dict keys -> str,
    non-finite floats (NaN, inf) -> None, anything else that JSON cannot hold (paths ...) -> ``str``.

    ``verbatim_lists`` passes lists and tuples through untouched, so NaN inside them stays NaN (JSON's
    non-standard token): the documents of ``evaluate`` and ``experiment`` (metrics.json, report.json) have
    always kept per-repetition values that way (an AUC on one class is NaN), and keep doing so.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v, verbatim_lists=verbatim_lists) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return value if verbatim_lists else [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist(), verbatim_lists=verbatim_lists)
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def write_json(
    target: Path | str,
    payload: Any,
    *,
    indent: int | None = 2,
    sort_keys: bool = False,
    verbatim_lists: bool = False,
) -> Path:
    """Write ``json_safe(payload)`` as JSON plus a newline to ``target``, atomically; returns ``target``."""
    safe = json_safe(payload, verbatim_lists=verbatim_lists)
    text = json.dumps(safe, indent=indent, sort_keys=sort_keys, allow_nan=verbatim_lists)
    return write_text(target, text + "\n")


def save_tensors(target: Path | str, tensors: Mapping[str, torch.Tensor]) -> Path:
    """Save tensors as safetensors (dense, contiguous CPU copies; ``format: pt`` metadata), atomically.

    Pass a module's ``state_dict()`` to save a module.
    """
    from safetensors.torch import save_file

    dense = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    target = Path(target)
    with atomic_path(target) as tmp:
        mode = os.stat(tmp).st_mode  # the umask's permissions, as every file we write
        save_file(dense, str(tmp), metadata={"format": "pt"})
        os.chmod(tmp, mode)  # safetensors replaces the file with an owner-only one
    return target
