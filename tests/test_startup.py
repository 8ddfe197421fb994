"""``detect``'s start-up: the parent reads ``config.json`` only; the workers import torch, load the model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deepfake_detect.inference import DetectOptions, Detector

PARENT = """
import json, sys
import pytest
from typer.testing import CliRunner
from deepfake_detect.cli.app import _load_commands, app
_load_commands(["deepfake-detect", "detect"])  # as main() does for `deepfake-detect detect`
result = CliRunner().invoke(app, ["detect", *sys.argv[1:], "--threads", "1"])
heavy = sorted(m for m in ("torch", "timm", "torchvision", "facenet_pytorch", "pandas") if m in sys.modules)
print(json.dumps({"code": result.exit_code, "heavy": heavy, "output": result.output}))
"""


def run_parent(args: list[str]) -> dict[str, Any]:
    """``detect ARGS`` in a fresh process; its exit code, the heavy modules it imported and its output."""
    env = {**os.environ, "COLUMNS": "160"}
    done = subprocess.run(
        [sys.executable, "-c", PARENT, *args], env=env, capture_output=True, text=True, timeout=600
    )
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, report["output"] + done.stderr
    return report


def test_the_parent_imports_no_torch_and_describes_the_model_as_a_full_load_does(
    tmp_path: Path, detect_media: dict[str, Path], detect_model_dir: Path
) -> None:
    out = tmp_path / "out.json"
    report = run_parent([str(detect_media["face"]), "--model", str(detect_model_dir), "--json", str(out)])
    assert report["heavy"] == []  # the worker (a spawned process) imported them, not the parent
    document = json.loads(out.read_text())
    assert document["videos"][0]["status"] == "ok"
    # the old path: the whole model loaded in this process, with the options detect builds by default
    options = DetectOptions(max_frames=300, detect_every=4)
    expected = Detector.load(detect_model_dir, options=options).model_info()
    assert document["model"] == expected
    assert expected["precision"] in ("32", "bf16") and expected["path"] == str(detect_model_dir)


def test_a_frame_model_is_described_from_its_config_too(
    tmp_path: Path, detect_media: dict[str, Path]
) -> None:
    import timm
    import torch

    from deepfake_detect.models.importers import import_model

    torch.manual_seed(0)
    torch.save({"state_dict": timm.create_model("resnet18", num_classes=1).state_dict()}, tmp_path / "r.pth")
    (tmp_path / "recipe.yaml").write_text(
        "arch: resnet18\nnum_outputs: 1\noutput: sigmoid\n"
        "recipe: {frames: 4, crop: {rule: margin-resize, size: 64}, aggregation: mean}\n"
    )
    model = import_model("timm-frame", [tmp_path / "r.pth"], tmp_path / "m", recipe=tmp_path / "recipe.yaml")
    out = tmp_path / "out.json"
    report = run_parent([str(detect_media["face"]), "--model", str(model), "--json", str(out)])
    assert report["heavy"] == []
    document = json.loads(out.read_text())
    assert document["videos"][0]["status"] == "ok", document["videos"][0]["error"]
    expected = Detector.load(model, options=DetectOptions(max_frames=300, detect_every=4)).model_info()
    assert document["model"] == expected and expected["kind"] == "frame"


def test_a_model_that_only_the_workers_fail_to_load_is_a_usage_error(
    tmp_path: Path, detect_media: dict[str, Path], detect_model_dir: Path
) -> None:
    from deepfake_detect.cli.app import _load_commands, app

    broken = tmp_path / "model"
    shutil.copytree(detect_model_dir, broken)
    (broken / "extractor.safetensors").write_bytes(b"not safetensors at all")
    _load_commands()
    result = CliRunner().invoke(app, ["detect", str(detect_media["face"]), "--model", str(broken)])
    assert result.exit_code == 2, result.output
    assert "is not a readable safetensors file" in result.output and "Traceback" not in result.output


def fake_map_isolated(
    address: str, fn: Any, items: Any, spec: Any, *, key: Any = str, resources: Any = None
) -> Any:
    """Stands in for ``cluster.map_isolated`` (no Dask here): the same jobs, in one isolated pool."""
    from deepfake_detect.infra.isolation import IsolatedPool

    with IsolatedPool(1, initializer=spec.initializer, initargs=spec.initargs) as pool:
        yield from pool.imap_unordered(fn, list(items))


def refuse_weights(*_: object, **__: object) -> None:
    raise AssertionError("the parent loaded the model's weights")


def test_cluster_and_onnx_parents_read_config_json_only(
    tmp_path: Path,
    detect_media: dict[str, Path],
    detect_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import deepfake_detect.cluster
    import deepfake_detect.export.onnx_engine
    import deepfake_detect.inference.engine
    import deepfake_detect.models.io
    from deepfake_detect.cli.app import _load_commands, app
    from deepfake_detect.export import export_onnx

    onnx_dir = export_onnx(detect_model_dir, tmp_path / "onnx")
    options = DetectOptions(max_frames=300, detect_every=4)
    expected = {
        "onnx": Detector.load(onnx_dir, engine="onnx", options=options).model_info(),
        "cluster": Detector.load(detect_model_dir, options=options).model_info(),
    }
    runs = {
        "onnx": ["--model", str(onnx_dir), "--engine", "onnx"],
        "cluster": ["--model", str(detect_model_dir), "--cluster", "local:1"],
    }
    # the workers are spawned processes: only this (the parent's) process is patched
    monkeypatch.setattr(deepfake_detect.cluster, "map_isolated", fake_map_isolated)
    monkeypatch.setattr(deepfake_detect.models.io, "load_model_dir", refuse_weights)
    monkeypatch.setattr(deepfake_detect.inference.engine, "load_model_dir", refuse_weights)
    monkeypatch.setattr(deepfake_detect.export.onnx_engine.OnnxEngine, "__init__", refuse_weights)
    monkeypatch.setattr(Detector, "load", refuse_weights)
    _load_commands()
    for name, args in runs.items():
        out = tmp_path / f"{name}.json"
        video = str(detect_media["face"])
        result = CliRunner().invoke(app, ["detect", video, *args, "--threads", "1", "--json", str(out)])
        assert result.exit_code == 0, (name, result.output, result.exception)
        document = json.loads(out.read_text())
        assert document["videos"][0]["status"] == "ok", (name, document["videos"][0]["error"])
        assert document["model"] == expected[name], name
