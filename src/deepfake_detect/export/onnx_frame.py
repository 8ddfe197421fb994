"""Frame models (``kind: frame``, SPEC §9) to ONNX, one graph per member, and back with onnxruntime.

Layout of an exported frame-model directory::

    OUT/
      config.json          the FrameModelConfig; extra["onnx"] (FrameOnnxSection) describes the graphs
      member-0.onnx        images (N, 3, S, S) float32, the recipe's normalisation applied -> P(fake) (N,)
      member-0.safetensors the member's weights (hard-linked or copied), so OUT also runs with torch
      ...

The recipe (frames, face detector, crop rule, /255 and mean/std) stays outside the graphs: the ONNX engine
runs the same code as the torch engine up to the network's input, then each member's graph instead of the
member. Every graph is checked with onnxruntime against torch before anything is written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from deepfake_detect.export.onnx_export import (
    OnnxExportError,
    check_graph,
    make_session,
    onnx_section,
    sha256_file,
    torch_export,
    versions,
)
from deepfake_detect.models.dir_config import CONFIG_FILE, ONNX_SECTION
from deepfake_detect.models.frame_config import FrameModelConfig, FrameRecipe, read_frame_model_config
from deepfake_detect.models.frame_dir import LoadedFrameModel, load_frame_model_dir

__all__ = [
    "FrameOnnxSection",
    "OnnxFrameMember",
    "export_frame_onnx",
    "load_onnx_frame_model",
    "read_frame_onnx_config",
]

logger = logging.getLogger(__name__)

INPUT = "images"
OUTPUT = "probabilities"
PREPROCESSING = (
    "the recipe's face crop, uint8 RGB (N, S, S, 3) -> float (N, 3, S, S): x / 255, then (x - mean) / std "
    "where the recipe has them"
)


class FrameOnnxSection(BaseModel):
    """``config.json`` -> ``extra["onnx"]`` of an exported frame-model directory."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = 1
    opset: int
    graphs: dict[str, str] = Field(description="member weights file -> its graph file")
    input: str = INPUT
    output: str = OUTPUT
    input_size: int
    preprocessing: str = PREPROCESSING
    sha256: dict[str, str] = Field(description="graph file -> hex digest")
    parity_max_abs: float = Field(description="largest |P_onnx - P_torch| over the crops checked at export")
    tolerance: float
    versions: dict[str, str] = Field(description="torch / onnx / onnxruntime used for the export")


def graph_file(member_file: str) -> str:
    """``member-0.safetensors`` -> ``member-0.onnx``."""
    return f"{Path(member_file).stem}.onnx"


def _check_crops(recipe: FrameRecipe, seed: int) -> torch.Tensor:
    """Network inputs (4, 3, S, S) to compare the engines on: uniform noise, smooth noise, grey, black."""
    size = recipe.crop.size
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8, generator=gen).float()
    smooth = torch.nn.functional.avg_pool2d(noise[1:].permute(0, 3, 1, 2), 9, 1, 4).permute(0, 2, 3, 1)
    flat = torch.stack([torch.full((size, size, 3), 128.0), torch.zeros(size, size, 3)])
    x = torch.cat([noise[:1], smooth, flat]).permute(0, 3, 1, 2) / 255.0  # (4, 3, S, S)
    if recipe.mean is not None and recipe.std is not None:
        x = (x - torch.tensor(recipe.mean).view(1, 3, 1, 1)) / torch.tensor(recipe.std).view(1, 3, 1, 1)
    return x.contiguous()


def _export_member(member: nn.Module, size: int, path: Path, opset: int) -> None:
    import onnx

    example = torch.zeros(2, 3, size, size)  # (N, 3, S, S); N is dynamic
    try:
        torch_export(
            member.eval(),
            (example,),
            path,
            opset,
            do_constant_folding=True,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "N"}, OUTPUT: {0: "N"}},
        )
        onnx.checker.check_model(str(path))
    except Exception as exc:  # the exporter and checker raise many unrelated types
        problem = f"{type(exc).__name__}: {exc}"
        raise OnnxExportError(f"cannot export {path.name} at opset {opset}: {problem}") from exc


def _parity(member: nn.Module, graph: Path, x: torch.Tensor) -> float:
    """Largest |P_onnx - P_torch| on ``x``, run as batches of 1 and of all (inf if not finite)."""
    with torch.inference_mode():
        expected = member(x).double().numpy()  # (N,)
    session = make_session(graph)
    one, batch = (session.run(None, {INPUT: part.numpy()})[0] for part in (x[:1], x))
    got = np.concatenate([one, batch])
    if got.shape != (1 + len(x),) or not np.all(np.isfinite(got)):
        return float("inf")
    return float(np.max(np.abs(got - np.concatenate([expected[:1], expected]))))


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists() and target.samefile(source):
        return
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(source, target)


def export_frame_onnx(
    model_dir: Path | str, out_dir: Path | str, *, opset: int = 17, tolerance: float = 1e-4, seed: int = 0
) -> Path:
    """Export every member of a frame-model directory to ``out_dir``; returns ``out_dir``.

    Each graph is checked against its torch member on :func:`_check_crops` (batches of 1 and 4); an
    export that differs by more than ``tolerance`` in P(fake) raises ``OnnxExportError`` and nothing is
    written. ``config.json`` is removed first and written last, so a folder with one is complete.
    """
    source = Path(model_dir)
    loaded = load_frame_model_dir(source)
    config, size = loaded.config, loaded.config.recipe.crop.size
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = _check_crops(config.recipe, seed)
    graphs, worst = {m.file: graph_file(m.file) for m in config.members}, 0.0
    with tempfile.TemporaryDirectory(dir=out, prefix=".onnx-export-") as tmp:
        staging = Path(tmp)
        for k, (spec, member) in enumerate(zip(config.members, loaded.members, strict=True)):
            logger.info("exporting member %d of %d (%s) to ONNX", k + 1, len(config.members), spec.file)
            _export_member(member, size, staging / graphs[spec.file], opset)
            diff = _parity(member, staging / graphs[spec.file], x)
            if not diff <= tolerance:
                raise OnnxExportError(
                    f"member {k} ({spec.file}): onnxruntime's P(fake) differs from torch's by {diff:.3g} "
                    f"(tolerance {tolerance:g})"
                )
            worst = max(worst, diff)
        section = FrameOnnxSection(
            opset=opset,
            graphs=graphs,
            input_size=size,
            sha256={name: sha256_file(staging / name) for name in graphs.values()},
            parity_max_abs=worst,
            tolerance=tolerance,
            versions=versions(),
        )
        exported = config.model_copy(update={"extra": {**config.extra, ONNX_SECTION: section.model_dump()}})
        text = json.dumps(exported.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
        (staging / CONFIG_FILE).write_text(text, encoding="utf-8")
        (out / CONFIG_FILE).unlink(missing_ok=True)
        for spec in config.members:
            _link_or_copy(source / spec.file, out / spec.file)
            os.replace(staging / graphs[spec.file], out / graphs[spec.file])
        os.replace(staging / CONFIG_FILE, out / CONFIG_FILE)
    logger.info(
        "exported %d %s member(s) to ONNX (opset %d, parity %.2g) in %s",
        len(graphs),
        config.network.arch,
        opset,
        worst,
        out,
    )
    return out


def read_frame_onnx_config(
    path: Path | str, *, check_hashes: bool = True
) -> tuple[FrameModelConfig, FrameOnnxSection]:
    """``config.json`` of an exported frame-model directory and its ONNX section; ``ModelDirError`` if the
    directory was never exported, or a graph is missing or altered (``check_hashes``)."""
    path = Path(path)
    config = read_frame_model_config(path, weights=False)
    section = onnx_section(path, config.extra, FrameOnnxSection)
    for member in config.members:
        name = section.graphs.get(member.file)
        check_graph(path, name, section.sha256, check_hash=check_hashes, what=f"the graph of {member.file}")
    return config, section


class OnnxFrameMember(nn.Module):
    """One member's graph behind the torch member's interface: (N, 3, S, S) float -> P(fake) (N,) float32.

    It has no parameters; ``engine = "onnx"`` tells the precision check that it always runs in fp32."""

    engine = "onnx"

    def __init__(self, graph: Path, section: FrameOnnxSection, threads: int | None = None) -> None:
        super().__init__()
        self.graph = graph
        self.section = section
        self._session: Any = make_session(graph, threads, shared_arena=True)  # members run in turn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())  # (N, 3, S, S)
        (probs,) = self._session.run(None, {self.section.input: images})
        return torch.from_numpy(np.asarray(probs, dtype=np.float32))  # (N,)


def load_onnx_frame_model(path: Path | str, *, threads: int | None = None) -> LoadedFrameModel:
    """An exported frame-model directory with one onnxruntime session per member (no torch weights read)."""
    path = Path(path)
    config, section = read_frame_onnx_config(path)
    members: list[nn.Module] = [
        OnnxFrameMember(path / section.graphs[m.file], section, threads) for m in config.members
    ]
    logger.info("onnx engine: %s (%d member(s), opset %d)", path, len(members), section.opset)
    return LoadedFrameModel(members=members, config=config)
