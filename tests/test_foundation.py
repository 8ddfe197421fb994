"""Layer-1 pieces: types, registry, config."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from deepfake_detect.config import Config, ConfigError, apply_overrides, dump_config, load_config
from deepfake_detect.registry import Registry, UnknownNameError
from deepfake_detect.training.head import head_kwargs_from
from deepfake_detect.types import BBox, Label


def test_label_parse_spellings() -> None:
    assert Label.parse("FAKE") is Label.FAKE
    assert Label.parse("real") is Label.REAL
    assert Label.parse(1) is Label.FAKE
    assert Label.parse("0") is Label.REAL
    with pytest.raises(ValueError, match="cannot read 'maybe'"):
        Label.parse("maybe")


def test_bbox_square_and_iou() -> None:
    box = BBox(10, 20, 30, 60)  # 20 x 40
    sq = box.square(margin=0.5)
    assert sq.width == pytest.approx(60.0) and sq.height == pytest.approx(60.0)
    assert sq.center == box.center == (20.0, 40.0)
    assert box.iou(box) == pytest.approx(1.0)
    assert box.iou(BBox(30, 60, 40, 70)) == 0.0
    # overlap of a 20x40 box with its right half: 400 / 800
    assert box.iou(BBox(20, 20, 30, 60)) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        BBox(5, 5, 1, 1)


def test_registry_lookup_and_close_matches() -> None:
    reg: Registry[int] = Registry("backbone")
    reg.register("resnet50")(50)
    reg.register("cnn4")(4)

    @reg.register_prefix("timm:")
    def _timm(name: str) -> int:
        return len(name)

    assert reg.get("cnn4") == 4
    assert reg.get("timm:abc") == 3
    assert reg.names() == ["cnn4", "resnet50"]
    with pytest.raises(UnknownNameError, match="Did you mean 'resnet50'") as info:
        reg.get("resnet5")
    assert "timm:<name>" in str(info.value)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("cnn4")(0)


def test_config_defaults_follow_the_paper() -> None:
    cfg = load_config()
    assert cfg.clips.clip_len == 100
    assert cfg.head.name == "lstm" and cfg.head.options == {}  # the head's own defaults: the paper's
    kwargs = head_kwargs_from(cfg, 512)
    assert (kwargs["layers"], kwargs["hidden"], kwargs["dropout"]) == (4, 512, 0.3)
    assert cfg.extractor.embed_dim == 512 and cfg.extractor.lr == 1e-3 and cfg.extractor.epochs == 100
    assert cfg.faces.mse_threshold == 0.5 and cfg.faces.crop_size == 256 and cfg.faces.margin == 0.2
    assert cfg.experiment.split_by == "source" and cfg.experiment.repeats == 6


def test_config_yaml_overrides_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "c.yaml"
    path.parent.mkdir()
    path.write_text("data:\n  root: ../videos\nextractor:\n  backbone: cnn4\n")
    cfg = load_config(
        path, ["extractor.epochs=3", "experiment.table3_heads=[lstm, mlp]", "clips.clip_len=20"]
    )
    assert cfg.extractor.backbone == "cnn4" and cfg.extractor.epochs == 3
    assert cfg.experiment.table3_heads == ["lstm", "mlp"]
    assert cfg.data.root == (tmp_path / "videos").resolve()
    assert "clip_len: 20" in dump_config(cfg)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["extractor.epochs=-1"], "extractor.epochs"),
        (["extractor.nope=1"], "extractor.nope"),
        (["clips.min_clip_len=200"], "min_clip_len"),
        (["justtext"], "not of the form"),
    ],
)
def test_config_errors_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


DEPRECATED_SECTION = "config section 'detector' is deprecated; use 'head'"


def test_old_detector_section_loads_into_head_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = tmp_path / "old.yaml"
    old.write_text("detector:\n  head: mlp\n  hidden: 16\n  keep: last\n")
    with caplog.at_level(logging.WARNING, logger="deepfake_detect.config"):
        cfg = load_config(old, ["detector.epochs=3"])
    assert (cfg.head.name, cfg.head.keep, cfg.head.epochs) == ("mlp", "last", 3)
    assert cfg.head.options == {"hidden": 16}
    assert DEPRECATED_SECTION in caplog.text
    written = yaml.safe_load(dump_config(cfg))  # what config.yaml files hold from now on
    assert "detector" not in written and written["head"]["name"] == "mlp"


def test_old_detector_override_applies_to_a_new_style_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    new = tmp_path / "new.yaml"
    new.write_text("head:\n  name: mlp\n  epochs: 5\n")
    with caplog.at_level(logging.WARNING, logger="deepfake_detect.config"):
        cfg = load_config(new, ["detector.epochs=3", "detector.head=frame-mlp"])
    assert (cfg.head.name, cfg.head.epochs) == ("frame-mlp", 3)
    assert DEPRECATED_SECTION in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="deepfake_detect.config"):
        assert load_config(new, ["head.epochs=4"]).head.epochs == 4
    assert "deprecated" not in caplog.text


def test_detector_and_head_sections_at_once_are_refused(tmp_path: Path) -> None:
    both = tmp_path / "both.yaml"
    both.write_text("detector:\n  epochs: 3\nhead:\n  epochs: 4\n")
    with pytest.raises(ConfigError, match="'detector' and 'head' are both given"):
        load_config(both)
    with pytest.raises(ValidationError, match="'detector' and 'head' are both given"):
        Config.model_validate({"detector": {}, "head": {}})


def test_pre_rename_python_names_resolve_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    import deepfake_detect.config as config_module
    import deepfake_detect.training as training

    with caplog.at_level(logging.WARNING):
        assert config_module.DetectorConfig is config_module.HeadConfig
        assert training.train_detector is training.train_head
        assert training.DetectorRun is training.HeadRun and training.DetectorModule is training.HeadModule
        assert training.labelled_clips is training.filter_labelled
    assert "DetectorConfig is deprecated; use HeadConfig" in caplog.text
    assert "train_detector is deprecated; use train_head" in caplog.text
    with pytest.raises(AttributeError):
        training.no_such_name  # noqa: B018


def test_apply_overrides_does_not_mutate_input() -> None:
    raw = {"a": {"b": 1}}
    out = apply_overrides(raw, ["a.b=2", "a.c=null"])
    assert raw == {"a": {"b": 1}} and out == {"a": {"b": 2, "c": None}}


def test_import_is_lazy() -> None:
    """``import deepfake_detect`` must not import torch (no work at import time)."""
    code = "import sys, deepfake_detect; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- extensions own their names and options ---------------------------------------------------------


def test_old_head_keys_load_as_options_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = tmp_path / "old.yaml"
    old.write_text("head:\n  name: mlp\n  hidden: 16\n  layers: 2\n  dropout: 0.1\n")
    with caplog.at_level(logging.WARNING, logger="deepfake_detect.config"):
        cfg = load_config(old, ["head.options.width=3"])
    assert cfg.head.options == {"width": 3, "hidden": 16, "layers": 2, "dropout": 0.1}
    for key in ("hidden", "layers", "dropout"):
        assert f"config key head.{key} is deprecated; use head.options.{key}" in caplog.text
    written = yaml.safe_load(dump_config(cfg))
    assert "hidden" not in written["head"] and written["head"]["options"]["hidden"] == 16
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="deepfake_detect.config"):
        assert load_config(None, ["head.hidden=8"]).head.options == {"hidden": 8}  # --set, old key
    assert "head.hidden is deprecated" in caplog.text
    with pytest.raises(ConfigError, match=r"head\.hidden and head\.options\.hidden are both given"):
        load_config(None, ["head.hidden=8", "head.options.hidden=16"])


def test_head_options_resolve_over_the_heads_own_defaults() -> None:
    from deepfake_detect.models import head_options, resolve_head_kwargs
    from deepfake_detect.registry import UnknownOptionError

    assert head_options("lstm") == {"hidden": 512, "layers": 4, "dropout": 0.3}
    cfg = load_config(None, ["head.options={hidden: 8}"])
    assert head_kwargs_from(cfg, 16) == {"input_dim": 16, "hidden": 8, "layers": 4, "dropout": 0.3}
    assert head_kwargs_from(cfg, 16, "frame-mlp") == resolve_head_kwargs("frame-mlp", 16, {"hidden": 8})
    with pytest.raises(UnknownOptionError, match="'lstm' has no option 'width'; its options: hidden, layers"):
        head_kwargs_from(load_config(None, ["head.options.width=3"]), 16)


def test_a_registered_class_is_named_by_the_registry() -> None:
    reg: Registry[type] = Registry("thing")

    @reg.register("my-thing")
    class Thing:
        name: str

        def __init__(self, size: int = 3, *, colour: str = "red") -> None: ...

    assert Thing.name == "my-thing" and reg.options("my-thing") == {"size": 3, "colour": "red"}
    reg.check_options("my-thing", {"colour": "blue"})
    with pytest.raises(ValueError, match="'my-thing' has no option 'shape'; its options: size, colour"):
        reg.check_options("my-thing", {"shape": "round"})
    reg.unregister("my-thing")
    assert "my-thing" not in reg


def test_a_registry_with_a_broken_extension_module_fails_every_lookup_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module that fails to import is not half-loaded: every lookup raises, naming it, until it imports."""
    import importlib

    from deepfake_detect.registry import ExtensionImportError

    package = tmp_path / "broken_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "good.py").write_text("from broken_pkg import REG\nREG.register('good')(len)\n")
    broken = "from broken_pkg import REG\nREG.register('half')(abs)\nraise RuntimeError('boom in bad')\n"
    (package / "zbad.py").write_text(broken)  # imported after good.py, having registered 'half'
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    reg: Registry[object] = Registry("thing", package="broken_pkg")
    importlib.import_module("broken_pkg").REG = reg
    try:
        for lookup in (lambda: reg.get("good"), reg.names, lambda: "good" in reg):
            with pytest.raises(ExtensionImportError, match=r"broken_pkg\.zbad failed to import.*boom in bad"):
                lookup()
        (package / "zbad.py").write_text("from broken_pkg import REG\nREG.register('half')(abs)\n")
        importlib.invalidate_caches()
        assert reg.names() == ["good", "half"] and reg.get("half") is abs and reg.get("good") is len
    finally:
        for name in ("broken_pkg", "broken_pkg.good", "broken_pkg.zbad"):
            sys.modules.pop(name, None)


def test_a_registry_imports_every_module_of_its_package_on_first_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new module in an extension package registers itself: no import line anywhere else."""
    package = tmp_path / "plugins_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from deepfake_detect.registry import Registry\nREG = Registry('x')\n"
    )
    (package / "mine.py").write_text("from plugins_pkg import REG\nREG.register('mine')(len)\n")
    (package / "_private.py").write_text("raise RuntimeError('modules named _x are not imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    reg: Registry[object] = Registry("x", package="plugins_pkg")
    importlib.import_module("plugins_pkg").REG = reg
    try:
        assert reg.names() == ["mine"] and reg.get("mine") is len
    finally:
        for name in ("plugins_pkg", "plugins_pkg.mine"):
            sys.modules.pop(name, None)
