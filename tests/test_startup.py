"""``detect``'s start-up: the parent reads ``config.json`` only; the workers import torch, load the model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

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


def test_the_parent_imports_no_torch_and_describes_the_model_as_a_full_load_does(
    tmp_path: Path, detect_media: dict[str, Path], detect_model_dir: Path
) -> None:
    out = tmp_path / "out.json"
    args = [str(detect_media["face"]), "--model", str(detect_model_dir), "--json", str(out)]
    env = {**os.environ, "COLUMNS": "160"}
    done = subprocess.run(
        [sys.executable, "-c", PARENT, *args], env=env, capture_output=True, text=True, timeout=600
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, report["output"] + done.stderr
    assert report["heavy"] == []  # the worker (a spawned process) imported them, not the parent
    document = json.loads(out.read_text())
    assert document["videos"][0]["status"] == "ok"
    # the old path: the whole model loaded in this process, with the options detect builds by default
    options = DetectOptions(max_frames=300, detect_every=4)
    expected = Detector.load(detect_model_dir, options=options).model_info()
    assert document["model"] == expected
    assert expected["precision"] in ("32", "bf16") and expected["path"] == str(detect_model_dir)


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
