"""Cosine-similarity matrices of frame embeddings, for numpy arrays and torch tensors alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, overload

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["cosine_similarity_matrix"]


@overload
def cosine_similarity_matrix(embeddings: np.ndarray, *, eps: float) -> np.ndarray: ...


@overload
def cosine_similarity_matrix(embeddings: torch.Tensor, *, eps: float) -> torch.Tensor: ...


def cosine_similarity_matrix(
    embeddings: np.ndarray | torch.Tensor, *, eps: float
) -> np.ndarray | torch.Tensor:
    """(..., T, D) -> (..., T, T): ``u @ u^T`` with ``u = x / max(||x||, eps)`` row by row.

    Vectors with a norm below ``eps`` count as (almost) zero, so their similarities are ~0 and gradients
    stay finite. The result has the input's type, dtype and device (torch: ``F.normalize``'s kernels, so
    the training loss is computed exactly as before; numpy: float arithmetic in the input's dtype).
    """
    if isinstance(embeddings, np.ndarray):
        norms = np.linalg.norm(embeddings, axis=-1, keepdims=True)  # (..., T, 1)
        unit = embeddings / np.maximum(norms, eps)  # (..., T, D)
        return unit @ np.swapaxes(unit, -1, -2)  # (..., T, T)
    import torch.nn.functional as F

    unit_t = F.normalize(embeddings, p=2.0, dim=-1, eps=eps)  # (..., T, D)
    return unit_t @ unit_t.transpose(-1, -2)  # (..., T, T)
