"""The import-linter contract in pyproject.toml states the layers' real order (SPEC §3).

A throwaway copy of the package gets one deliberately wrong import; import-linter, run with the project's
own contract, must fail on it and pass on the unchanged copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import deepfake_detect

PACKAGE = Path(deepfake_detect.__file__).parent
PYPROJECT = PACKAGE.parents[1] / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(
    not (LINT_IMPORTS.is_file() and PYPROJECT.is_file()), reason="needs import-linter and a source checkout"
)


def _copy_package(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(PACKAGE, src / "deepfake_detect", ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(PYPROJECT, tmp_path / "pyproject.toml")
    return src


def _lint(tmp_path: Path, src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [str(LINT_IMPORTS), str(tmp_path / "pyproject.toml"), "--no-cache"]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_the_contract_passes_on_the_package_as_it_is(tmp_path: Path) -> None:
    result = _lint(tmp_path, _copy_package(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("training", "experiment"),  # layer 4: training sits below the experiment that runs it
        ("experiment", "demo"),  # the demo runs experiments, not the other way round
        ("evaluation", "inference"),  # inference aggregates with evaluation's rules
        ("preprocess", "training"),  # siblings of one level are independent
        ("infra", "config"),  # infrastructure is the bottom layer
    ],
)
def test_a_wrong_import_breaks_the_contract(tmp_path: Path, importer: str, imported: str) -> None:
    src = _copy_package(tmp_path)
    module = src / "deepfake_detect" / importer / "wrong_way.py"
    module.write_text(f"import deepfake_detect.{imported}\n", encoding="utf-8")
    result = _lint(tmp_path, src)
    assert result.returncode != 0, result.stdout
    assert "1 broken" in result.stdout
    assert f"deepfake_detect.{importer}.wrong_way -> deepfake_detect.{imported}" in result.stdout
