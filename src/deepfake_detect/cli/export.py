"""``export``: a model directory to a runtime format (ONNX) for ``detect --engine onnx``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from deepfake_detect.cli.app import app
from deepfake_detect.cli.common import QuietOption, VerboseOption, console, fail, setup_logging
from deepfake_detect.registry import UnknownNameError

EXPORT_HELP = """Export a trained model directory (config.json + safetensors) for another runtime.

--format onnx writes OUT/extractor.onnx (normalised face crops (N, 3, S, S) -> embeddings (N, D)),
OUT/head.onnx (embeddings (B, T, D) + lengths (B,) -> fake probabilities (B,)) and OUT/config.json.
The graphs are checked with onnxruntime against torch on random inputs first; an export that differs by
more than --tolerance is refused and nothing is written. Run it with `deepfake-detect detect --engine onnx
--model OUT VIDEO`. OUT may be the model directory itself (it then serves both engines).

A frame model (imported with `import-model`) is exported member by member: OUT/member-K.onnx (the
recipe's normalised crops (N, 3, S, S) -> P(fake) (N,)) beside the members' safetensors and config.json;
on a CPU onnxruntime runs EfficientNets about twice as fast as PyTorch (benchmarks/RESULTS.md,
frame_vs_reference)."""


@app.command("export", help=EXPORT_HELP)
def export_command(
    out: Annotated[Path, typer.Argument(help="Output folder (created if needed).", show_default=False)],
    model: Annotated[
        Path, typer.Option("--model", "-m", help="Model directory to export.", show_default=False)
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help="Export format: onnx.")] = "onnx",
    opset: Annotated[int, typer.Option("--opset", min=7, help="ONNX opset version.")] = 17,
    tolerance: Annotated[
        float, typer.Option("--tolerance", min=0.0, help="Largest difference from torch accepted.")
    ] = 1e-4,
    verbose: VerboseOption = 0,
    quiet: QuietOption = False,
) -> None:
    setup_logging(verbose, quiet)
    from deepfake_detect.export import EXPORT_FORMATS, OnnxExportError
    from deepfake_detect.models.io import ModelDirError

    try:
        exporter = EXPORT_FORMATS.get(fmt)
    except UnknownNameError as exc:
        fail(str(exc), code=2)
    if not model.is_dir():
        fail(f"model directory not found: {model}", code=2)
    start = time.perf_counter()
    try:
        written = exporter(model, out, opset=opset, tolerance=tolerance)
    except ModelDirError as exc:
        fail(str(exc), code=2)
    except OnnxExportError as exc:
        fail(f"export refused: {exc}", code=1)
    except OSError as exc:
        fail(f"cannot write {out}: {exc}", code=1)
    console.print(f"exported {model} as {fmt} to {written} in {time.perf_counter() - start:.1f}s")
