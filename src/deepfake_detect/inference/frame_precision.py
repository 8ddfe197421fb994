"""Which precision a frame model's member runs in on this machine: bf16 autocast, or fp32.

bf16 (with channels-last tensors) is several times faster on CPUs with native bf16 kernels (AVX512-BF16,
AMX) and much slower where oneDNN has to emulate it; and how far it moves P(fake) depends on the network
and its weights. So nothing is assumed: the first time a member classifies crops in this process,
it runs :data:`CHECK_CROPS` real face crops spread evenly over that video's crops in both precisions,
and bf16 is kept only where the largest per-crop difference in P(fake) is below the tolerance (0.01).
The decision is cached per member (a model loaded once decides once); :func:`precision_checks` reports it.

Why at first use and not at import: a model directory may be imported on one machine and run on
another (whose CPU may lack bf16), and only at detect time are real face crops of the user's footage at
hand; the check costs one fp32 pass over a few crops per member per process. It is a sample: the
largest difference over all of a video's crops can be larger (benchmarks/RESULTS.md, frame_vs_reference).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from deepfake_detect.inference.engine import bf16_supported

__all__ = [
    "BF16_TOLERANCE",
    "CHECK_CROPS",
    "PrecisionCheck",
    "check_precision",
    "choose_precision",
    "member_forward",
    "precision_checks",
    "precision_label",
]

logger = logging.getLogger(__name__)

BF16_TOLERANCE = 0.01
CHECK_CROPS = 8
PRECISION_REQUESTS = ("auto", "bf16", "32")


@dataclass(frozen=True)
class PrecisionCheck:
    """The precision a member runs in and why: ``max_difference`` is the largest |P_bf16 - P_fp32| over
    the ``crops`` checked (None where bf16 was not tried)."""

    precision: str  # "bf16" or "32"
    max_difference: float | None
    crops: int
    tolerance: float
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_CHECKS: weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, float], PrecisionCheck]] = (
    weakref.WeakKeyDictionary()
)


def member_forward(member: nn.Module, x: torch.Tensor, precision: str) -> torch.Tensor:
    """P(fake) per crop, (B,) float32, under bf16 autocast when ``precision == "bf16"``."""
    with torch.inference_mode(), torch.autocast(x.device.type, torch.bfloat16, enabled=precision == "bf16"):
        out: torch.Tensor = member(x)
    return out.float()


def check_precision(
    member: nn.Module, x: torch.Tensor, requested: str = "auto", tolerance: float = BF16_TOLERANCE
) -> PrecisionCheck:
    """Decide (without caching) on the crops ``x`` (B, 3, S, S): fp32 unless bf16 is requested ("bf16",
    or "auto" where the device runs it natively) and every crop's P(fake) moves by less than
    ``tolerance``."""
    if requested not in PRECISION_REQUESTS:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_REQUESTS)}, got {requested!r}")
    if getattr(member, "engine", "torch") == "onnx":  # export.onnx_frame.OnnxFrameMember
        return PrecisionCheck("32", None, 0, tolerance, "onnxruntime runs the exported fp32 graph")
    if requested == "32":
        return PrecisionCheck("32", None, 0, tolerance, "fp32 requested")
    if requested == "auto" and not bf16_supported(x.device):
        return PrecisionCheck("32", None, 0, tolerance, f"no native bf16 on this {x.device.type}")
    reference = member_forward(member, x, "32")
    try:
        low = member_forward(member, x, "bf16")
    except RuntimeError as exc:  # an operator without a bf16 kernel here
        return PrecisionCheck("32", None, 0, tolerance, f"bf16 failed here ({exc})")
    diff = float((reference - low).abs().max())
    if diff < tolerance:
        return PrecisionCheck("bf16", diff, len(x), tolerance, "bf16 within tolerance of fp32")
    logger.info("bf16 moves P(fake) by %.4f (>= %.4f) on this model: using fp32", diff, tolerance)
    return PrecisionCheck("32", diff, len(x), tolerance, "bf16 differs from fp32 by more than the tolerance")


def choose_precision(
    member: nn.Module, x: torch.Tensor, requested: str = "auto", tolerance: float = BF16_TOLERANCE
) -> PrecisionCheck:
    """:func:`check_precision` on the first :data:`CHECK_CROPS` crops of ``x``, once per member and
    (request, tolerance) in this process."""
    known = _CHECKS.setdefault(member, {})
    key = (requested, float(tolerance))
    if key not in known:
        known[key] = check_precision(member, x[:CHECK_CROPS], requested, tolerance)
        logger.info("frame model member runs in %s (%s)", known[key].precision, known[key].reason)
    return known[key]


def precision_checks(members: Sequence[nn.Module]) -> list[dict[str, Any] | None]:
    """Per member, its last decision in this process (None: not yet decided, no video classified)."""
    out: list[dict[str, Any] | None] = []
    for member in members:
        known = _CHECKS.get(member)
        out.append(list(known.values())[-1].to_json() if known else None)
    return out


def precision_label(checks: Sequence[dict[str, Any] | None], requested: str) -> str:
    """``"bf16"``, ``"32"``, ``"mixed"`` (members differ) or ``"auto"`` (not decided yet)."""
    if requested == "32":
        return "32"
    decided = {c["precision"] for c in checks if c is not None}
    if not decided:
        return "auto"
    return decided.pop() if len(decided) == 1 else "mixed"
