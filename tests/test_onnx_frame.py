"""``export --format onnx`` of an imported frame model and ``detect --engine onnx`` with it: the graphs
give the original torch module's P(fake) on real face crops, and a video's verdict equals the torch
engine's (EfficientNet-B0 members in the DFDC winner's checkpoint layout, random weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deepfake_detect.cli.app import _load_commands, app
from deepfake_detect.export import export_onnx
from deepfake_detect.export.onnx_export import OnnxExportError
from deepfake_detect.export.onnx_frame import load_onnx_frame_model, read_frame_onnx_config
from deepfake_detect.inference import Detector
from deepfake_detect.inference.options import DetectOptions
from deepfake_detect.inference.remote import WorkerDetector
from deepfake_detect.models.importers import import_model
from deepfake_detect.models.io import ModelDirError
from test_importers import WinnerClassifier, face_crops, winner_checkpoint

FP32 = DetectOptions(precision="32")
Dirs = tuple[Path, Path, list[WinnerClassifier]]
_load_commands()


@pytest.fixture(scope="module")
def frame_dirs(tmp_path_factory: pytest.TempPathFactory, astronaut_rgb: np.ndarray) -> Dirs:
    """An imported 2-member dfdc-winner model and its ONNX export into another folder."""
    root = tmp_path_factory.mktemp("onnx-frame")
    sample = face_crops(astronaut_rgb, 380, normalise=True)
    files = [root / f"final_{i}_DeepFakeClassifier_tf_efficientnet_b0_ns_0_best_dice" for i in range(2)]
    originals = [winner_checkpoint(f, sample, seed=i) for i, f in enumerate(files)]
    import_model("dfdc-winner", files, root / "model")
    export_onnx(root / "model", root / "onnx")
    return root / "model", root / "onnx", originals


def test_the_graphs_give_the_original_modules_probabilities(
    frame_dirs: Dirs, astronaut_rgb: np.ndarray
) -> None:
    _, onnx_dir, originals = frame_dirs
    config, section = read_frame_onnx_config(onnx_dir)
    assert sorted(section.graphs.values()) == ["member-0.onnx", "member-1.onnx"]
    assert section.input_size == 380 and section.parity_max_abs <= section.tolerance
    assert config.card["family"] == "dfdc-winner"  # the card travels with the export
    loaded = load_onnx_frame_model(onnx_dir, threads=1)
    x = face_crops(astronaut_rgb, 380, normalise=True)  # a real face and three crops beside it
    for member, original in zip(loaded.members, originals, strict=True):
        with torch.inference_mode():
            expected = torch.sigmoid(original(x)).squeeze(1).numpy()  # (4,)
        got = member(x).numpy()
        assert got.shape == (4,) and np.ptp(expected) > 0.05  # the crops differ, and so must P(fake)
        # the export's own parity tolerance: onnxruntime's and torch's fp32 kernels sum in different orders
        # (1.4e-5 apart on an AMD EPYC, under 1e-5 on an Intel Xeon); a wrong graph is off by far more
        np.testing.assert_allclose(got, expected, atol=section.tolerance)


def test_detect_with_the_onnx_engine_equals_the_torch_engine(
    frame_dirs: Dirs, detect_media: dict[str, Path]
) -> None:
    model_dir, onnx_dir, _ = frame_dirs
    video = detect_media["faces2"]
    by_torch = Detector.load(model_dir, options=FP32).detect(video)
    detector = Detector.load(onnx_dir, engine="onnx")
    by_onnx = detector.detect(video)
    assert by_onnx.status.value == "ok", by_onnx.error
    assert by_onnx.fake_probability == pytest.approx(by_torch.fake_probability, abs=1e-4)  # fp32 kernels
    got = [row["fake_probability"] for row in by_onnx.info["frame_probabilities"]]
    expected = [row["fake_probability"] for row in by_torch.info["frame_probabilities"]]
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert [c["reason"] for c in by_onnx.info["precision"]] == [
        "onnxruntime runs the exported fp32 graph"
    ] * 2
    info = detector.model_info()
    assert info["engine"] == "onnx" and info["precision"] == "32" and info["kind"] == "frame"
    # the exported folder has the weights too, so the torch engine runs it as well
    assert Detector.load(onnx_dir, options=FP32).detect(video).fake_probability == by_torch.fake_probability


def test_the_workers_parent_reads_only_the_config(
    frame_dirs: Dirs,
) -> None:
    model_dir, onnx_dir, _ = frame_dirs
    opened = WorkerDetector.open(onnx_dir, engine="onnx")
    assert opened.model_info()["engine"] == "onnx"
    with pytest.raises(ModelDirError, match="has no ONNX export"):
        WorkerDetector.open(model_dir, engine="onnx")
    with pytest.raises(ModelDirError, match="has no ONNX export"):
        Detector.load(model_dir, engine="onnx")


def test_an_altered_graph_is_refused(frame_dirs: Dirs, tmp_path: Path) -> None:
    _, onnx_dir, _ = frame_dirs
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in onnx_dir.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    with (copy / "member-1.onnx").open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00" * 8)
    with pytest.raises(ModelDirError, match=r"member-1\.onnx does not match the sha256"):
        Detector.load(copy, engine="onnx")
    (copy / "member-1.onnx").unlink()
    with pytest.raises(ModelDirError, match=r"missing the graph of member-1\.safetensors"):
        read_frame_onnx_config(copy)


class _Halved(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * 0.5


def test_an_export_that_does_not_match_torch_writes_nothing(
    frame_dirs: Dirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exporter that writes a different network (here: P(fake) halved) is caught by the parity check."""
    from deepfake_detect.export import onnx_frame

    model_dir, _, _ = frame_dirs
    real = onnx_frame.torch_export
    monkeypatch.setattr(onnx_frame, "torch_export", lambda m, *a, **k: real(_Halved(m), *a, **k))
    out = tmp_path / "strict"
    with pytest.raises(OnnxExportError, match="differs from torch's by"):
        export_onnx(model_dir, out)
    assert not (out / "config.json").exists() and not list(out.glob("*.onnx"))


def test_the_cli_exports_a_frame_model(frame_dirs: Dirs, tmp_path: Path) -> None:
    model_dir, _, _ = frame_dirs
    result = CliRunner().invoke(app, ["export", str(tmp_path / "cli"), "--model", str(model_dir)])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert written["kind"] == "frame" and set(written["extra"]["onnx"]["graphs"]) == {
        "member-0.safetensors",
        "member-1.safetensors",
    }
