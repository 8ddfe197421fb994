"""Sequence heads (SPEC §2 'Detector'): per-frame embeddings (B, T, D) + lengths (B,) -> logits (B,).

Heads return logits; callers apply the sigmoid (or train with ``BCEWithLogitsLoss``). Batches are
right-padded: frame ``t`` of clip ``b`` is valid when ``t < lengths[b]``, and padded positions never
change the output (they are packed away or masked to zero before any arithmetic, so even NaN padding
is harmless).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from deepfake_detect.registry import Registry


def check_lengths(x: torch.Tensor, lengths: torch.Tensor) -> None:
    """Raise ValueError unless x is (B, T, D) and lengths is (B,) integers in [1, T]."""
    if x.ndim != 3:
        raise ValueError(f"expected embeddings shaped (B, T, D), got {tuple(x.shape)}")
    if lengths.ndim != 1 or lengths.shape[0] != x.shape[0]:
        raise ValueError(f"lengths must be shaped ({x.shape[0]},), got {tuple(lengths.shape)}")
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be integers, got {lengths.dtype}")
    if _exporting():  # value checks would be data-dependent control flow in a traced graph
        return
    if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > x.shape[1]):
        raise ValueError(f"lengths must lie in [1, T={x.shape[1]}], got {lengths.tolist()}")


def valid_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool, True on valid frames."""
    steps = torch.arange(t, device=lengths.device)  # (T,)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)


class SequenceHead(nn.Module):
    """Protocol of every head: ``forward(x (B, T, D), lengths (B,) int64) -> logits (B,)``.

    ``temporal_evidence`` says what a head can see of how frames relate, so reports can reason about heads
    without knowing their names: ``order`` (the sequence, in order), ``pooled`` (a summary over the clip
    that ignores order, e.g. the mean), ``none`` (each frame alone), ``unknown`` (not declared).
    """

    input_dim: int
    temporal_evidence: str = "unknown"

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


HeadFactory = Callable[..., SequenceHead]
# Every module of models/extra_heads/ is imported on the first lookup (a new head: one new file there).
SEQUENCE_HEADS: Registry[HeadFactory] = Registry(
    "sequence head", package="deepfake_detect.models.extra_heads"
)


def mlp(input_dim: int, hidden: int, layers: int, dropout: float, out_dim: int = 1) -> nn.Sequential:
    """``layers`` linear layers: input -> hidden (ReLU, dropout) ... -> out_dim."""
    if layers < 1:
        raise ValueError(f"an MLP needs at least one layer, got {layers}")
    modules: list[nn.Module] = []
    width = input_dim
    for _ in range(layers - 1):
        modules += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    modules.append(nn.Linear(width, out_dim))
    return nn.Sequential(*modules)


@SEQUENCE_HEADS.register("lstm")
class LSTMHead(SequenceHead):
    """The paper's detector: LSTM (4 layers, 512 hidden, dropout 0.3) -> last valid hidden state -> linear."""

    temporal_evidence = "order"

    def __init__(
        self, input_dim: int = 512, hidden: int = 512, layers: int = 4, dropout: float = 0.3
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.lstm = nn.LSTM(
            input_dim, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0, batch_first=True
        )
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        check_lengths(x, lengths)
        lengths = lengths.to(x.device)  # (B,) may arrive on the CPU from a DataLoader
        if _exporting():
            last = self._last_by_gather(x, lengths)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self.lstm(packed)  # h_n: (layers, B, H), back in the batch's order
            last = h_n[-1]  # (B, H): top layer at each clip's last valid frame
        return self.out(last).squeeze(-1)  # (B,)

    def _last_by_gather(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Same result without packing (for ONNX export): the LSTM is causal, so the top layer's output
        at frame ``lengths - 1`` equals the last hidden state of the unpadded clip."""
        out, _ = self.lstm(x)  # (B, T, H)
        index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, out.shape[-1])  # (B, 1, H)
        return out.gather(1, index).squeeze(1)  # (B, H)


def _exporting() -> bool:
    return bool(torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting())


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames: (B, T, ...) -> (B, ...). Padding is replaced by zeros first."""
    mask = valid_mask(lengths, x.shape[1])  # (B, T)
    mask = mask.view(*mask.shape, *([1] * (x.ndim - 2)))  # (B, T, 1...)
    total = torch.where(mask, x, torch.zeros_like(x)).sum(dim=1)  # (B, ...)
    count = lengths.to(x.dtype).view(-1, *([1] * (x.ndim - 2)))  # (B, 1...)
    return total / count


class _MLPHead(SequenceHead):
    """What the MLP heads share: ``layers`` linear layers of ``hidden`` units (ReLU, dropout) -> 1 logit."""

    def __init__(
        self, input_dim: int = 512, hidden: int = 512, layers: int = 4, dropout: float = 0.3
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.mlp = mlp(input_dim, hidden, layers, dropout)


@SEQUENCE_HEADS.register("mlp")
class MeanMLPHead(_MLPHead):
    """Baseline: a 4-layer MLP over the masked temporal mean of the embeddings (order-blind).

    The mean of embeddings that disagree over time is shorter than that of embeddings that agree, so
    this head can still sense temporal dispersion (SPEC §2), but not order.
    """

    temporal_evidence = "pooled"

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        check_lengths(x, lengths)
        lengths = lengths.to(x.device)  # (B,) may arrive on the CPU from a DataLoader
        pooled = masked_mean(x, lengths)  # (B, D)
        return self.mlp(pooled).squeeze(-1)  # (B,)


@SEQUENCE_HEADS.register("frame-mlp")
class FrameMLPHead(_MLPHead):
    """Baseline free of temporal evidence: the same MLP on each frame alone, logits averaged over
    the valid frames."""

    temporal_evidence = "none"

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        check_lengths(x, lengths)
        lengths = lengths.to(x.device)  # (B,) may arrive on the CPU from a DataLoader
        mask = valid_mask(lengths, x.shape[1]).unsqueeze(-1)  # (B, T, 1)
        x = torch.where(mask, x, torch.zeros_like(x))  # (B, T, D), padding zeroed before the MLP
        frame_logits = self.mlp(x).squeeze(-1)  # (B, T)
        return masked_mean(frame_logits, lengths)  # (B,)


def temporal_evidence(name: str) -> str:
    """What a registered head sees of how frames relate (see :class:`SequenceHead`)."""
    return str(getattr(SEQUENCE_HEADS.get(name), "temporal_evidence", "unknown"))


def create_head(name: str, **kwargs: Any) -> SequenceHead:
    """Build a registered sequence head: ``kwargs`` (``input_dim`` and the head's options) go to its
    constructor as they are (as timm's ``create_model`` does); what is not given takes the constructor's
    default (the built-in heads: the paper's 4 x 512, dropout 0.3). An option the head does not take
    raises :class:`~deepfake_detect.registry.UnknownOptionError` naming the options it takes."""
    SEQUENCE_HEADS.check_options(name, kwargs)
    return SEQUENCE_HEADS.get(name)(**kwargs)


def head_options(name: str) -> dict[str, Any]:
    """The options of head ``name`` (its constructor's keyword parameters but ``input_dim``) with their
    defaults."""
    return SEQUENCE_HEADS.options(name, skip=("input_dim",))


def resolve_head_kwargs(name: str, input_dim: int, options: Mapping[str, Any]) -> dict[str, Any]:
    """``input_dim`` and every option of head ``name``, ``options`` over the constructor's defaults: the
    ``head_kwargs`` a model directory records (so it reads the same whatever the config left unsaid).

    Raises :class:`~deepfake_detect.registry.UnknownOptionError` for an option the head does not take."""
    SEQUENCE_HEADS.check_options(name, options, skip=("input_dim",))
    defaults = {k: v for k, v in head_options(name).items() if v is not inspect.Parameter.empty}
    return {"input_dim": input_dim, **defaults, **options}
