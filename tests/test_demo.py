"""The demo: packaged configs, the last-model pointer, a tiny end-to-end run through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepfake_detect.config import load_config
from deepfake_detect.demo import DEMO_CONFIG, PAPER_CONFIG, packaged_config
from deepfake_detect.inference.last_model import last_model_path, last_model_pointer, record_last_model
from deepfake_detect.training.head import head_kwargs_from

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# A demo small enough for the default test run: 8 videos (4 sources), 1 repetition, 1 epoch everywhere.
TINY_DEMO = [
    "data.synth.frames=36",
    "data.synth.width=256",
    "data.synth.height=192",
    "clips.clip_len=16",
    "extractor.epochs=1",
    "head.epochs=1",
    "experiment.repeats=1",
    "experiment.test_clips=4",
    "experiment.val_clips=2",
    "experiment.table2_backbones=[cnn4]",
]


@pytest.mark.parametrize("name", [DEMO_CONFIG, PAPER_CONFIG])
def test_repo_configs_are_the_packaged_ones(name: str) -> None:
    """configs/*.yaml at the repository root document the packaged files and must not drift from them."""
    assert (REPO_CONFIGS / name).read_bytes() == packaged_config(name).read_bytes()


def test_paper_config_holds_the_papers_settings() -> None:
    cfg = load_config(REPO_CONFIGS / PAPER_CONFIG)
    assert cfg.clips.clip_len == 100 and cfg.faces.crop_size == 256 and cfg.faces.detector == "mtcnn"
    assert (cfg.extractor.backbone, cfg.extractor.epochs, cfg.extractor.lr) == ("resnet50", 100, 1e-3)
    kwargs = head_kwargs_from(cfg, 512)
    assert (cfg.head.name, kwargs["layers"], kwargs["hidden"]) == ("lstm", 4, 512)
    assert (kwargs["dropout"], cfg.head.epochs, cfg.head.lr) == (0.3, 20, 1e-3)
    exp = cfg.experiment
    assert (exp.repeats, exp.test_clips, exp.val_clips) == (6, 100, 308)
    assert exp.table2_backbones == ["inception_resnet_v2", "cnn4", "resnet50"]
    assert exp.table2_overrides["inception_resnet_v2"]["hinge"] is False
    assert cfg.data.layout == "dfdc" and cfg.data.root == (REPO_CONFIGS / "../data/dfdc").resolve()


def test_demo_config_is_the_temporal_synthetic_benchmark() -> None:
    cfg = load_config(packaged_config(DEMO_CONFIG))
    assert cfg.data.synth is not None and cfg.data.synth.track == "temporal"
    assert cfg.experiment.split_by == "source" and cfg.experiment.table3_heads == ["lstm", "mlp", "frame-mlp"]


def test_last_model_pointer_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert last_model_pointer() == tmp_path / "cache" / "deepfake-detect" / "last-model"
    assert last_model_path() is None
    model = tmp_path / "model"
    model.mkdir()
    record_last_model(model)
    assert last_model_path() is None  # not a model folder (no config.json): not offered
    (model / "config.json").write_text("{}")
    assert last_model_path() == model.resolve()


def _run_demo_cli(out: Path, extra: list[str]) -> dict[str, object]:
    from deepfake_detect.cli.app import _load_commands, app

    _load_commands()
    result = CliRunner().invoke(app, ["demo", "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    assert "report:" in result.output and "total" in result.output
    report: dict[str, object] = json.loads((out / "report" / "report.json").read_text())
    return report


def test_tiny_demo_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deepfake_detect.models import load_model_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    overrides = [arg for item in TINY_DEMO for arg in ("--set", item)]
    report = _run_demo_cli(tmp_path / "demo", ["--videos", "8", *overrides])
    assert (tmp_path / "demo" / "synth" / "metadata.json").is_file()
    assert (tmp_path / "demo" / "clips" / "manifest.csv").is_file()
    assert (tmp_path / "demo" / "report" / "report.md").is_file()
    assert last_model_path() == (tmp_path / "demo" / "model").resolve()
    assert load_model_dir(tmp_path / "demo" / "model").config.head == "lstm"
    timings = report["demo_timings_s"]
    assert isinstance(timings, dict) and {"synthesise videos", "preprocess videos"} <= set(timings)
    cpu = report["demo_cpu_s"]
    assert isinstance(cpu, dict) and set(cpu) <= set(timings) and cpu["train extractors"] > 0


@pytest.mark.slow
def test_full_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo as a user runs it (minutes on two cores): what its report claims must hold."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    report: dict = _run_demo_cli(tmp_path / "demo", [])
    table3 = {row["head"]: row for row in report["table3"]["rows"]}
    assert set(table3) == {"lstm", "mlp", "frame-mlp"}
    env = report["environment"]
    assert set(env["precision"].values()) == {"32"} and env["digests"]["synthetic videos"].endswith(
        "(66 files)"
    )
    # The science: the temporal head separates temporal-only fakes well, and better than the frame-only head.
    lstm = table3["lstm"]["clip"]["roc_auc"]
    assert lstm["mean"] >= 0.75 and lstm["ci95"][0] > 0.5
    assert report["comparison"]["against"]["frame-mlp"]["auc_difference"]["mean"] > 0
    # Every comparison sentence is decided exactly when its 95% interval excludes 0.
    against = report["comparison"]["against"]
    for sentence, (other, c) in zip(report["conclusions"], against.items(), strict=False):
        low, high = c["auc_difference"]["ci95"]
        assert f"`{other}`" in sentence and sentence.startswith("Undecided") == (low <= 0 <= high), sentence
    frame = next(s for s in report["conclusions"] if "no relation between frames" in s)
    single = table3["frame-mlp"]["single_frame"]["frame_auc"]
    if abs(single["mean"] - 0.5) > 2 * single["std"] / single["n"] ** 0.5:
        assert "carry label information" in frame
    # The final model: trained on all clips after the repetitions, calibrated, with the repetitions' AUC.
    config = json.loads((tmp_path / "demo" / "model" / "config.json").read_text())
    assert config["card"]["expected_auc"]["clip_roc_auc"] == pytest.approx(lstm["mean"])
    assert (
        config["card"]["training"]["training_clips"] + config["card"]["training"]["calibration_clips"]
        == (report["settings"]["clips"])
    )
    assert config["temperature"] > 0 and "reliability (lstm)" in report["figures"]
    calibrated = report["table1"]["clip"]["log_loss_calibrated"]["mean"]
    assert calibrated <= report["table1"]["clip"]["log_loss"]["mean"] + 0.05  # T fitted on validation clips


def test_benchmark_config_replicates_the_demo_recipe_independently() -> None:
    demo, bench = load_config(REPO_CONFIGS / DEMO_CONFIG), load_config(REPO_CONFIGS / "benchmark.yaml")
    assert bench.data.synth is not None and demo.data.synth is not None
    assert bench.experiment.replicate_by == "dataset"
    assert bench.data.synth.replications >= bench.experiment.repeats >= 8
    assert (bench.extractor, bench.head, bench.faces, bench.clips) == (
        demo.extractor,
        demo.head,
        demo.faces,
        demo.clips,
    )
    assert bench.data.synth.model_copy(update={"replications": 1}) == demo.data.synth
    assert bench.experiment.table3_heads == demo.experiment.table3_heads
