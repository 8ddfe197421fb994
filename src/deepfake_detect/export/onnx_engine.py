"""Run an ONNX directory (written by ``export_onnx``) with onnxruntime on the CPU.

``OnnxEngine`` follows the inference ``Engine`` protocol: ``embed`` (uint8 crops -> embeddings) and
``score`` (padded embedding sequences + lengths -> fake probabilities). No torch weights are read; torch
itself is still used for the resize + normalise step so that it matches ``FeatureExtractor.prepare``
bit for bit.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from deepfake_detect.export.onnx_export import OnnxSection, check_graph, make_session, onnx_section
from deepfake_detect.models.calibration import apply_temperature
from deepfake_detect.models.extractor import prepare_frames as torch_prepare_frames
from deepfake_detect.models.io import CONFIG_FILE, ModelDirConfig, ModelDirError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnnxModelDir:
    """A checked ONNX directory: its model config, its ONNX section and the graph files."""

    path: Path
    config: ModelDirConfig
    onnx: OnnxSection

    @property
    def extractor_path(self) -> Path:
        return self.path / self.onnx.extractor

    @property
    def head_path(self) -> Path:
        return self.path / self.onnx.head


def read_onnx_dir(path: Path | str, *, check_hashes: bool = True) -> OnnxModelDir:
    """Read ``config.json`` of an ONNX directory; raise ModelDirError if it is missing, is a plain
    torch model directory (never exported), or its graph files are missing or altered."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file():
        raise ModelDirError(f"not an ONNX model directory (no {CONFIG_FILE}): {path}")
    try:
        config = ModelDirConfig.model_validate(json.loads((path / CONFIG_FILE).read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as exc:
        raise ModelDirError(f"{path / CONFIG_FILE} is not a valid model config: {exc}") from None
    section = onnx_section(path, config.extra, OnnxSection)
    for name in (section.extractor, section.head):
        check_graph(path, name, section.sha256, check_hash=check_hashes, what=name)
    return OnnxModelDir(path=path, config=config, onnx=section)


def prepare_frames(
    frames: np.ndarray | torch.Tensor,
    input_size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
) -> np.ndarray:
    """uint8 RGB (N, H, W, 3) -> contiguous float32 (N, 3, S, S), by ``FeatureExtractor``'s own code."""
    out: np.ndarray = torch_prepare_frames(frames, input_size, mean, std).contiguous().numpy()
    return out


class OnnxEngine:
    """Embeds crops and scores sequences with the two graphs of an ONNX directory (CPU onnxruntime).

    ``threads``: onnxruntime intra-op threads (None: its default, one per core).
    """

    name = "onnx"

    def __init__(self, onnx_dir: Path | str, *, threads: int | None = None) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.model = read_onnx_dir(onnx_dir)
        self.config = self.model.config
        self._extractor: Any = make_session(self.model.extractor_path, threads)
        self._head: Any = make_session(self.model.head_path, threads)
        logger.info("onnx engine: %s (opset %d)", self.model.path, self.model.onnx.opset)

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB crops (N, H, W, 3) of any size -> float32 embeddings (N, D)."""
        cfg = self.config
        images = prepare_frames(frames, cfg.input_size, cfg.mean, cfg.std)  # (N, 3, S, S)
        (embeddings,) = self._extractor.run(None, {self.model.onnx.extractor_input: images})
        return np.asarray(embeddings, dtype=np.float32)  # (N, D)

    def score(self, embeddings: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Right-padded embeddings (B, T, D) + valid lengths (B,) -> fake probabilities (B,) float32."""
        x = np.ascontiguousarray(embeddings, dtype=np.float32)  # (B, T, D)
        n = np.asarray(lengths)
        if x.ndim != 3 or x.shape[2] != self.embed_dim:
            raise ValueError(f"expected embeddings shaped (B, T, {self.embed_dim}), got {x.shape}")
        if n.shape != (x.shape[0],) or not np.issubdtype(n.dtype, np.integer):
            raise ValueError(f"lengths must be {x.shape[0]} integers, got {n.dtype} {n.shape}")
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        if n.min() < 1 or n.max() > x.shape[1]:  # the graph gathers at lengths - 1 without checks
            raise ValueError(f"lengths must lie in [1, T={x.shape[1]}], got {n.tolist()}")
        names = self.model.onnx.head_inputs
        (probs,) = self._head.run(None, {names[0]: x, names[1]: n.astype(np.int64)})
        if self.config.temperature != 1.0:  # the graph ends in a plain sigmoid; calibrate its output
            probs = apply_temperature(probs, self.config.temperature)
        return np.asarray(probs, dtype=np.float32)  # (B,)
