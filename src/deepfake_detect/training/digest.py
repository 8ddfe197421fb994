"""A short, stable fingerprint of a module's weights (names, dtypes, shapes, bytes)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


def state_digest(module: nn.Module, extra: Mapping[str, Any] | None = None) -> str:
    """A short, stable hash of a module's tensors (names, dtypes, shapes, bytes) and ``extra`` facts."""
    digest = hashlib.sha256(json.dumps(dict(extra or {}), sort_keys=True, default=str).encode())
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{data.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
