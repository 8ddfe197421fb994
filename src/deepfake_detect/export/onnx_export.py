"""Model directory -> ONNX directory (issue 4), verified against torch before anything is written.

Layout of an ONNX directory::

    OUT/
      config.json     the model's ModelDirConfig; extra["onnx"] (OnnxSection) describes the graphs
      extractor.onnx  images (N, 3, S, S) float32, normalised -> embeddings (N, D) float32
      head.onnx       embeddings (B, T, D) float32 + lengths (B,) int64 -> probabilities (B,) float32

N, B and T are dynamic. Resizing and normalisation stay outside the graph: the crops arrive at any size
and the antialiased bilinear resize of ``FeatureExtractor.prepare`` has no exact ONNX counterpart, so the
engine runs that same torch code (``onnx_engine.prepare_frames``) and feeds the graph its result.
``config.json`` stays a valid ``ModelDirConfig`` (the ONNX facts live in its ``extra``), so exporting
into the model directory itself gives one folder that both engines can load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from deepfake_detect.export.formats import EXPORT_FORMATS
from deepfake_detect.models.dir_config import ONNX_SECTION, model_dir_kind
from deepfake_detect.models.heads import SequenceHead
from deepfake_detect.models.io import CONFIG_FILE, LoadedModel, ModelDirError, load_model_dir

logger = logging.getLogger(__name__)

EXTRACTOR_ONNX = "extractor.onnx"
HEAD_ONNX = "head.onnx"
PREPROCESSING = (
    "uint8 RGB (N, H, W, 3) -> float (N, 3, S, S): bilinear resize to S x S with antialiasing "
    "(align_corners=False; skipped when already S x S), then (x / 255 - mean) / std per channel"
)


class OnnxExportError(RuntimeError):
    """An export that failed or did not reproduce the torch model; nothing was written."""


class OnnxParity(BaseModel):
    """Largest differences between onnxruntime and torch measured on random inputs at export time."""

    model_config = ConfigDict(extra="forbid")

    extractor_max_abs: float = Field(description="embeddings, absolute")
    extractor_max_rel: float = Field(description="embeddings, divided by max(1, largest |torch value|)")
    head_max_abs: float = Field(description="probabilities, absolute")
    tolerance: float


class OnnxSection(BaseModel):
    """``config.json`` -> ``extra["onnx"]`` of an ONNX directory."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = 1
    opset: int
    extractor: str = EXTRACTOR_ONNX
    head: str = HEAD_ONNX
    extractor_input: str = "images"
    extractor_output: str = "embeddings"
    head_inputs: tuple[str, str] = ("embeddings", "lengths")
    head_output: str = "probabilities"
    preprocessing: str = PREPROCESSING
    sha256: dict[str, str] = Field(description="file name -> hex digest")
    parity: OnnxParity
    versions: dict[str, str] = Field(description="torch / onnx / onnxruntime used for the export")


class ProbabilityHead(nn.Module):
    """A sequence head with the sigmoid applied: (B, T, D) + (B,) -> probabilities (B,)."""

    def __init__(self, head: SequenceHead) -> None:
        super().__init__()
        self.head = head

    def forward(self, embeddings: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(embeddings, lengths))  # (B,)


_SHARED_ARENA: list[bool] = []  # whether this process registered onnxruntime's shared CPU arena


def _register_shared_arena() -> None:
    """Register one CPU memory arena for every session that asks for it (once per process)."""
    import onnxruntime as ort

    if not _SHARED_ARENA:
        cpu = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(cpu, ort.OrtArenaCfg(0, -1, -1, -1))
        _SHARED_ARENA.append(True)


def make_session(path: Path, threads: int | None = None, *, shared_arena: bool = False) -> Any:
    """An onnxruntime CPU session; ``threads`` = intra-op threads (None: onnxruntime's default).

    ``shared_arena``: the session takes its working memory from one arena shared by all such sessions of
    the process instead of an arena of its own, which keeps the memory its largest run needed. Sessions
    that run one after another (an ensemble's members) then need one arena's peak, not one per session:
    7 EfficientNet-B7 members at 380 px, 16 crops per run, ran out of 23 GB with their own arenas.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    if shared_arena:
        _register_shared_arena()
        options.add_session_config_entry("session.use_env_allocators", "1")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def torch_export(
    module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, opset: int, **kw: Any
) -> None:
    """TorchScript-based exporter (the dynamo one needs onnxscript); its warnings go to the debug log
    (tracer warnings come from shape checks that are constant for a given model; parity is verified)."""
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        torch.onnx.export(module, args, str(path), opset_version=opset, dynamo=False, **kw)
    for warning in caught:
        logger.debug("torch.onnx.export: %s", warning.message)


def export_graphs(loaded: LoadedModel, out_dir: Path, opset: int) -> None:
    """Write ``extractor.onnx`` and ``head.onnx`` into ``out_dir`` (no verification)."""
    import onnx

    size, dim = loaded.config.input_size, loaded.config.embed_dim
    images = torch.zeros(2, 3, size, size)  # (N, 3, S, S) example; N is dynamic
    embeddings = torch.zeros(2, 3, dim)  # (B, T, D) example; B and T are dynamic
    lengths = torch.tensor([3, 2], dtype=torch.int64)  # (B,)
    jobs: list[tuple[str, nn.Module, tuple[torch.Tensor, ...], dict[str, Any]]] = [
        (EXTRACTOR_ONNX, loaded.extractor, (images,), {
            "input_names": ["images"], "output_names": ["embeddings"],
            "dynamic_axes": {"images": {0: "N"}, "embeddings": {0: "N"}},
        }),
        (HEAD_ONNX, ProbabilityHead(loaded.head), (embeddings, lengths), {
            "input_names": ["embeddings", "lengths"], "output_names": ["probabilities"],
            "dynamic_axes": {"embeddings": {0: "B", 1: "T"}, "lengths": {0: "B"}, "probabilities": {0: "B"}},
        }),
    ]  # fmt: skip
    for name, module, args, names in jobs:
        module.eval()
        try:
            torch_export(module, args, out_dir / name, opset, do_constant_folding=True, **names)
            onnx.checker.check_model(str(out_dir / name))
        except Exception as exc:  # the exporter and checker raise many unrelated types
            problem = f"{type(exc).__name__}: {exc}"
            raise OnnxExportError(f"cannot export {name} at opset {opset}: {problem}") from exc


def _extractor_parity(loaded: LoadedModel, session: Any, gen: torch.Generator) -> tuple[float, float]:
    size, worst_abs, worst_rel = loaded.config.input_size, 0.0, 0.0
    for n in (1, 3):
        frames = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=gen)  # (N, S, S, 3)
        images = loaded.extractor.prepare(frames).contiguous()  # (N, 3, S, S)
        with torch.no_grad():
            expected = loaded.extractor(images).numpy()  # (N, D)
        (got,) = session.run(None, {"images": images.numpy()})
        diff = float(np.max(np.abs(got - expected))) if np.all(np.isfinite(got)) else float("inf")
        worst_abs = max(worst_abs, diff)
        worst_rel = max(worst_rel, diff / max(1.0, float(np.max(np.abs(expected)))))
    return worst_abs, worst_rel


def _head_parity(loaded: LoadedModel, session: Any, gen: torch.Generator) -> float:
    dim, worst = loaded.config.embed_dim, 0.0
    for lengths_list in ([1], [9, 1, 5, 9]):
        lengths = torch.tensor(lengths_list, dtype=torch.int64)  # (B,)
        x = torch.randn(len(lengths_list), max(lengths_list), dim, generator=gen)  # (B, T, D)
        padded = torch.arange(x.shape[1]).unsqueeze(0) >= lengths.unsqueeze(1)  # (B, T)
        x[padded] = 1e3  # padding must not matter
        with torch.no_grad():
            expected = torch.sigmoid(loaded.head(x, lengths)).numpy()  # (B,)
        (got,) = session.run(None, {"embeddings": x.numpy(), "lengths": lengths.numpy()})
        diff = float(np.max(np.abs(got - expected))) if np.all(np.isfinite(got)) else float("inf")
        worst = max(worst, diff)
    return worst


def verify_onnx(loaded: LoadedModel, onnx_dir: Path, *, tolerance: float = 1e-4, seed: int = 0) -> OnnxParity:
    """Run both graphs with onnxruntime on random inputs (several batch sizes, padded variable lengths)
    and compare with torch; raise OnnxExportError when a difference exceeds ``tolerance`` (embeddings
    relative to their scale, probabilities absolute)."""
    gen = torch.Generator().manual_seed(seed)
    ext_abs, ext_rel = _extractor_parity(loaded, make_session(onnx_dir / EXTRACTOR_ONNX), gen)
    head_abs = _head_parity(loaded, make_session(onnx_dir / HEAD_ONNX), gen)
    parity = OnnxParity(
        extractor_max_abs=ext_abs, extractor_max_rel=ext_rel, head_max_abs=head_abs, tolerance=tolerance
    )
    logger.info("ONNX parity: embeddings %.3g (rel. %.3g), probabilities %.3g", ext_abs, ext_rel, head_abs)
    if not ext_rel <= tolerance:
        raise OnnxExportError(
            f"the exported extractor differs from torch by {ext_rel:.3g} (relative; tolerance {tolerance:g})"
        )
    if not head_abs <= tolerance:
        raise OnnxExportError(
            f"the exported head's probabilities differ from torch by {head_abs:.3g} (tolerance {tolerance:g})"
        )
    return parity


SectionT = TypeVar("SectionT", bound=BaseModel)


def onnx_section(path: Path, extra: Mapping[str, Any], section: type[SectionT]) -> SectionT:
    """The ONNX section of the ``config.json`` of ``path`` (its ``extra``), checked; ``ModelDirError`` if the
    directory was never exported or the section is invalid."""
    raw = extra.get(ONNX_SECTION)
    if raw is None:
        raise ModelDirError(
            f"{path} has no ONNX export: run `deepfake-detect export --model {path} --format onnx OUT` first"
        )
    try:
        return section.model_validate(raw)
    except ValidationError as exc:
        raise ModelDirError(f"{path / CONFIG_FILE}: invalid extra.{ONNX_SECTION} section: {exc}") from None


def check_graph(
    path: Path, name: str | None, sha256: Mapping[str, str], *, check_hash: bool, what: str
) -> None:
    """``ModelDirError`` unless graph ``name`` of ``path`` exists and (``check_hash``) has its recorded
    sha256; ``what`` names the graph in the message."""
    if name is None or not (path / name).is_file():
        raise ModelDirError(f"{path} is an incomplete ONNX export: missing {what}")
    if check_hash and sha256_file(path / name) != sha256.get(name):
        raise ModelDirError(
            f"{path / name} does not match the sha256 recorded in {CONFIG_FILE}; export again"
        )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def _config_text(loaded: LoadedModel, section: OnnxSection) -> str:
    raw = loaded.config.model_dump(mode="json")
    raw["extra"] = {**raw["extra"], ONNX_SECTION: section.model_dump(mode="json")}
    return json.dumps(raw, indent=2, sort_keys=True) + "\n"


@EXPORT_FORMATS.register("onnx")
def export_onnx(
    model_dir: Path | str, out_dir: Path | str, *, opset: int = 17, tolerance: float = 1e-4, seed: int = 0
) -> Path:
    """Export a model directory to ``out_dir`` (extractor.onnx, head.onnx, config.json); returns out_dir.

    The graphs are written to a staging folder inside ``out_dir`` and checked with onnxruntime against
    torch (:func:`verify_onnx`); only a verified export replaces files in ``out_dir``, with
    ``config.json`` removed first and written last, so a folder with a config is always complete.
    Raises ``ModelDirError`` for an unusable model directory and ``OnnxExportError`` otherwise.
    A frame model (``kind: frame``) is exported member by member (``export.onnx_frame``).
    """
    if model_dir_kind(model_dir) == "frame":
        from deepfake_detect.export.onnx_frame import export_frame_onnx

        return export_frame_onnx(model_dir, out_dir, opset=opset, tolerance=tolerance, seed=seed)
    loaded = load_model_dir(model_dir)
    if loaded.config.frame_extractor is not None:
        raise OnnxExportError(
            f"{model_dir} uses a frozen frame model as its extractor, whose crop preparation (OpenCV "
            "resize) the ONNX engine does not reproduce: run it with the torch engine"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".onnx-export-") as tmp:
        staging = Path(tmp)
        export_graphs(loaded, staging, opset)
        parity = verify_onnx(loaded, staging, tolerance=tolerance, seed=seed)
        section = OnnxSection(
            opset=opset,
            sha256={name: sha256_file(staging / name) for name in (EXTRACTOR_ONNX, HEAD_ONNX)},
            parity=parity,
            versions=versions(),
        )
        (staging / CONFIG_FILE).write_text(_config_text(loaded, section), encoding="utf-8")
        (out / CONFIG_FILE).unlink(missing_ok=True)
        for name in (EXTRACTOR_ONNX, HEAD_ONNX, CONFIG_FILE):
            os.replace(staging / name, out / name)
    cfg = loaded.config
    logger.info("exported %s + %s to ONNX (opset %d) in %s", cfg.backbone, cfg.head, opset, out)
    return out
