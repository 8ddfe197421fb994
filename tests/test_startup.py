"""``detect``'s start-up: the parent reads ``config.json`` only; the workers import torch, load the model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from deepfake_detect.inference import DetectOptions, Detector

PARENT = """
import json, sys
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
