"""Inference engines: what turns face crops into embeddings and embedding sequences into P(fake).

An engine follows :class:`Engine`; :data:`ENGINES` maps a name to a factory
``factory(model_dir, *, device, precision, channels_last) -> Engine``. "torch" runs a model directory
with PyTorch (:class:`TorchEngine`); "onnx" runs an exported directory with onnxruntime
(``export.onnx_engine.OnnxEngine``, imported only when asked for).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from deepfake_detect.models.io import LoadedModel, ModelDirConfig, load_model_dir
from deepfake_detect.registry import Registry

logger = logging.getLogger(__name__)


@runtime_checkable
class Engine(Protocol):
    """Runs one model. ``config`` is the model's ``config.json`` (faces, clips, threshold...)."""

    name: str
    config: ModelDirConfig

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB crops (N, H, W, 3) -> float32 embeddings (N, D)."""
        ...

    def score(self, embeddings: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Right-padded float32 embeddings (B, T, D) + valid lengths (B,) -> P(fake) (B,)."""
        ...


class EngineFactory(Protocol):
    def __call__(self, model_dir: Path, *, device: str, precision: str, channels_last: bool) -> Engine: ...


ENGINES: Registry[EngineFactory] = Registry("inference engine")


def create_engine(
    name: str,
    model_dir: Path | str,
    *,
    device: str = "cpu",
    precision: str = "auto",
    channels_last: bool = True,
) -> Engine:
    """Build the engine registered as ``name`` for ``model_dir`` (ModelDirError for a bad directory)."""
    factory = ENGINES.get(name)
    return factory(Path(model_dir), device=device, precision=precision, channels_last=channels_last)


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 autocast runs natively here (CPU: oneDNN bf16 kernels, e.g. AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class TorchEngine:
    """A model directory run with PyTorch: batched, optionally bf16 autocast and channels-last.

    ``precision``: "auto" (bf16 where :func:`bf16_supported`, else fp32), "bf16" or "32". Only the
    extractor runs under autocast; embeddings are returned as float32 and the head runs in fp32. If a
    bf16 forward pass fails on this machine, the engine falls back to fp32 (logged once).
    """

    name = "torch"

    def __init__(
        self,
        loaded_model: LoadedModel,
        device: str = "cpu",
        precision: str = "auto",
        channels_last: bool = True,
    ) -> None:
        if precision not in ("auto", "bf16", "32"):
            raise ValueError(f"precision must be 'auto', 'bf16' or '32', got {precision!r}")
        self.device = torch.device(device)
        self.extractor = loaded_model.extractor.to(self.device).eval()
        self.head = loaded_model.head.to(self.device).eval()
        self.config = loaded_model.config
        self.channels_last = channels_last
        if channels_last:
            self.extractor.to(memory_format=torch.channels_last)
        wants_bf16 = precision == "bf16" or (precision == "auto" and bf16_supported(self.device))
        self.precision = "bf16" if wants_bf16 else "32"

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def embed(self, frames: np.ndarray) -> np.ndarray:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 crops shaped (N, H, W, 3), got {frames.dtype} {frames.shape}")
        if len(frames) == 0:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        with torch.inference_mode():
            x = self.extractor.prepare(torch.from_numpy(np.ascontiguousarray(frames)).to(self.device))
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)  # (N, 3, S, S) NHWC strides
            return self._forward(x)

    def _forward(self, x: torch.Tensor) -> np.ndarray:
        if self.precision == "bf16":
            try:
                with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
                    out = self.extractor(x)  # (N, D)
                return out.float().cpu().numpy()
            except RuntimeError as exc:
                logger.warning("bf16 inference failed on this machine (%s); using fp32", exc)
                self.precision = "32"
        return self.extractor(x).float().cpu().numpy()  # (N, D)

    def score(self, embeddings: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        x = np.asarray(embeddings, dtype=np.float32)  # (B, T, D)
        n = np.asarray(lengths, dtype=np.int64)  # (B,)
        if x.ndim != 3 or x.shape[2] != self.embed_dim or n.shape != (x.shape[0],):
            raise ValueError(
                f"expected (B, T, {self.embed_dim}) embeddings and (B,) lengths, got {x.shape} and {n.shape}"
            )
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        with torch.inference_mode():
            logits = self.head(torch.from_numpy(x).to(self.device), torch.from_numpy(n))  # (B,)
            return torch.sigmoid(logits.float() / self.config.temperature).cpu().numpy()  # calibrated


@ENGINES.register("torch")
def _torch_engine(model_dir: Path, *, device: str, precision: str, channels_last: bool) -> Engine:
    loaded = load_model_dir(model_dir, device=device)
    return TorchEngine(loaded, device=device, precision=precision, channels_last=channels_last)


@ENGINES.register("onnx")
def _onnx_engine(model_dir: Path, *, device: str, precision: str, channels_last: bool) -> Engine:
    from deepfake_detect.export.onnx_engine import OnnxEngine  # onnxruntime only when asked for

    if device != "cpu":
        logger.warning("the onnx engine runs on the CPU; ignoring device=%s", device)
    engine: Engine = OnnxEngine(model_dir, threads=torch.get_num_threads())
    return engine
