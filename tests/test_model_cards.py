"""Honest defaults: a model trained on synthetic data says so in the CLI table, the JSON and the HTML report;
a model without such a card says nothing of the kind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepfake_detect.cli.app import _load_commands, app
from deepfake_detect.models.cards import SYNTHETIC_WARNING, synthetic_card

_load_commands()


@pytest.fixture(scope="module")
def synthetic_model_dir(detect_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared tiny model, with the card the demo writes."""
    target = tmp_path_factory.mktemp("cards") / "model"
    shutil.copytree(detect_model_dir, target)
    config = json.loads((target / "config.json").read_text())
    config["card"] = synthetic_card("the built-in benchmark")
    (target / "config.json").write_text(json.dumps(config))
    return target


def _detect(model: Path, video: Path, out: Path) -> tuple[str, dict, str]:
    result = CliRunner().invoke(
        app,
        [
            "detect",
            str(video),
            "--model",
            str(model),
            "--json",
            str(out / "r.json"),
            "--report",
            str(out / "rep"),
        ],
    )
    assert result.exit_code == 0, result.output
    page = (out / "rep" / "index.html").read_text()
    return result.output, json.loads((out / "r.json").read_text()), page


def test_the_synthetic_warning_is_in_all_three_outputs(
    synthetic_model_dir: Path, detect_media: dict[str, Path], tmp_path: Path
) -> None:
    table, document, page = _detect(synthetic_model_dir, detect_media["short"], tmp_path)
    assert document["model"]["warnings"] == [SYNTHETIC_WARNING]
    assert "synthetic data only" in " ".join(table.split())
    assert "synthetic data only" in page


def test_a_model_without_the_card_shows_no_warning(
    detect_model_dir: Path, detect_media: dict[str, Path], tmp_path: Path
) -> None:
    table, document, page = _detect(detect_model_dir, detect_media["short"], tmp_path)
    assert document["model"]["warnings"] == []
    assert "synthetic" not in table and "synthetic" not in page
