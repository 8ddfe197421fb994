"""The paper's hinge loss on the cosine-similarity matrix of a clip's frame embeddings (SPEC §2).

For a clip of T embeddings, ``S`` is the T x T cosine-similarity matrix and
``L1 = mean |S - I|`` (over all T*T entries, or over the band ``|i - j| <= window``, diagonal
included). The paper's loss (its eq. 2, labels y = +1 fake / -1 real; here 1 fake / 0 real):

* fake clip: ``L1``. Minimising it drives S towards the identity: the off-diagonal similarities go
  to 0, i.e. frames of a fake are pushed *apart* (orthogonal embeddings).
* real clip: ``max(0, margin - L1)``, margin 1. Minimising it drives ``L1`` *up*, i.e. the
  off-diagonal ``|S_ij|`` towards 1: frames of a real clip are pulled *together* (SPEC: "push
  frames together"). This is not the contradiction it may look like: ``L1`` measures distance from
  the identity, and identical frames (S all ones) are as far from I as unit-similarity entries allow.

Consequences of the formula, implemented exactly as written (documented, not "fixed"):

* With non-zero embeddings the diagonal of S is 1, so ``L1 <= (T - 1) / T`` (full matrix) and the
  real-clip hinge never switches off: its loss is ``1 - L1 >= 1 / T``, reaching ``1 / T`` exactly
  when all frames are identical. With a window the floor is ``T / n_band`` (n_band entries in the band).
* ``|S - I|`` is sign-blind: anti-parallel frames (S_ij = -1) count as "together" as much as
  identical ones.
* Zero embeddings are normalised with ``eps`` (their similarities are 0 and gradients stay finite).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from deepfake_detect.infra.similarity import cosine_similarity_matrix as cosine_similarities


def cosine_similarity_matrix(embeddings: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(B, T, D) -> (B, T, T) cosine similarities; vectors with norm < eps are treated as zero."""
    if embeddings.ndim != 3:
        raise ValueError(f"expected embeddings shaped (B, T, D), got {tuple(embeddings.shape)}")
    return cosine_similarities(embeddings, eps=eps)  # (B, T, T)


def band_mask(t: int, window: int | None, device: torch.device | None = None) -> torch.Tensor:
    """(T, T) bool: True where ``|i - j| <= window`` (everywhere when window is None)."""
    idx = torch.arange(t, device=device)
    if window is None:
        return torch.ones(t, t, dtype=torch.bool, device=device)
    return (idx.unsqueeze(0) - idx.unsqueeze(1)).abs() <= window  # (T, T)


def identity_distance(embeddings: torch.Tensor, window: int | None = None, eps: float = 1e-8) -> torch.Tensor:
    """Per-clip ``L1 = mean |S - I|`` over the (banded) matrix: (B, T, D) -> (B,)."""
    sim = cosine_similarity_matrix(embeddings, eps=eps)  # (B, T, T)
    t = sim.shape[-1]
    eye = torch.eye(t, dtype=sim.dtype, device=sim.device)  # (T, T)
    dist = (sim - eye).abs()  # (B, T, T)
    if window is None:
        return dist.mean(dim=(1, 2))  # (B,)
    mask = band_mask(t, window, sim.device)  # (T, T)
    return (dist * mask).sum(dim=(1, 2)) / mask.sum()  # (B,)


def _check_labels(labels: torch.Tensor, batch: int) -> torch.Tensor:
    if labels.shape != (batch,):
        raise ValueError(f"labels must be shaped ({batch},), got {tuple(labels.shape)}")
    is_fake = labels == 1
    if not bool((is_fake | (labels == 0)).all()):
        bad = sorted({float(v) for v in labels[~(is_fake | (labels == 0))].tolist()})
        raise ValueError(f"labels must be 1 (fake) or 0 (real), got {bad}; the paper's -1 for real is 0 here")
    return is_fake  # (B,) bool


def similarity_hinge_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 1.0,
    window: int | None = None,
    *,
    eps: float = 1e-8,
    reduction: Literal["mean", "none"] = "mean",
) -> torch.Tensor:
    """The paper's hinge loss (see the module docstring for the direction of each term).

    Args:
        embeddings: (B, T, D) frame embeddings of B clips.
        labels: (B,) with 1 = fake, 0 = real (any numeric dtype).
        margin: the hinge margin Delta (paper: 1).
        window: if given, average ``|S - I|`` only over entries with ``|i - j| <= window``.
        eps: norm floor for the cosine similarity.
        reduction: "mean" -> scalar mean over clips; "none" -> (B,) per-clip losses.
    """
    if embeddings.ndim != 3 or embeddings.shape[0] < 1 or embeddings.shape[1] < 1:
        shape = tuple(embeddings.shape)
        raise ValueError(f"expected embeddings shaped (B, T, D) with B, T >= 1, got {shape}")
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1 or None, got {window}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    is_fake = _check_labels(labels.to(embeddings.device), embeddings.shape[0])  # (B,)
    l1 = identity_distance(embeddings, window=window, eps=eps)  # (B,)
    per_clip = torch.where(is_fake, l1, F.relu(margin - l1))  # (B,)
    return per_clip.mean() if reduction == "mean" else per_clip
