"""Importers of published detectors: containers made here in the publishers' exact layouts (random
weights, EfficientNet-B0 where the importer infers the variant), compared with the original modules."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from deepfake_detect.cli.app import _load_commands, app
from deepfake_detect.models.frame_dir import load_frame_model_dir
from deepfake_detect.models.importers import CheckpointError, import_model
from deepfake_detect.models.io import ModelDirError, read_model_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")
_load_commands()


class WinnerClassifier(nn.Module):
    """The DFDC winner's classifier as its training code lays it out: encoder, average pool, dropout, fc."""

    def __init__(self, arch: str) -> None:
        super().__init__()
        import timm

        self.encoder = timm.create_model(arch, pretrained=False)
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(self.encoder.num_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.avg_pool(self.encoder.forward_features(x)).flatten(1)))


def _spread(module: nn.Module, sample: torch.Tensor) -> nn.Module:
    """BN statistics measured on ``sample`` and a final layer scaled to logits of spread ~2 on it, so that
    different crops get different probabilities (an untrained network with unit BN statistics answers
    the same for every input)."""
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    module.train()
    with torch.no_grad():
        module(sample)
    module.eval()
    last = [m for m in module.modules() if isinstance(m, nn.Linear)][-1]
    seen: list[torch.Tensor] = []
    handle = last.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    with torch.no_grad():
        module(sample)
        handle.remove()
        logits = seen[0] @ last.weight.T  # (N, K)
        scale = 2.0 / logits.std(dim=0).clamp_min(1e-12)
        last.weight.mul_(scale[:, None])
        last.bias.copy_(-logits.mean(dim=0) * scale)
    for m in norms:
        m.momentum = 0.1
    return module


def winner_checkpoint(
    path: Path, sample: torch.Tensor, arch: str = "tf_efficientnet_b0", seed: int = 0
) -> WinnerClassifier:
    torch.manual_seed(seed)
    model = _spread(WinnerClassifier(arch), sample)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}  # saved from DataParallel
    torch.save({"epoch": 7, "state_dict": state, "bce_best": np.float64(0.1932)}, path)
    return model


def sbi_checkpoint(
    path: Path, sample: torch.Tensor, arch: str = "efficientnet-b0", seed: int = 0
) -> nn.Module:
    from efficientnet_pytorch import EfficientNet

    torch.manual_seed(seed)
    net = _spread(EfficientNet.from_name(arch, num_classes=2), sample)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch.save({"model": state, "optimizer": optimizer.state_dict(), "epoch": 99}, path)
    return net


def face_crops(photo: np.ndarray, size: int, normalise: bool) -> torch.Tensor:
    """A real face crop and three crops beside it as (4, 3, size, size) float tensors."""
    boxes = ((60, 130), (230, 260), (0, 0), (240, 0))
    crops = [
        cv2.resize(photo[y : y + 270, x : x + 240], (size, size), interpolation=cv2.INTER_AREA)
        for y, x in boxes
    ]
    x = torch.tensor(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
    if normalise:
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        x = (x - mean) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return x


@pytest.fixture(scope="module")
def winner_files(
    tmp_path_factory: pytest.TempPathFactory, astronaut_rgb: np.ndarray
) -> tuple[list[Path], list[WinnerClassifier]]:
    root = tmp_path_factory.mktemp("winner")
    files = [root / f"final_{i}_DeepFakeClassifier_tf_efficientnet_b0_ns_0_best_dice" for i in range(2)]
    sample = face_crops(astronaut_rgb, 380, normalise=True)
    return files, [winner_checkpoint(f, sample, seed=i) for i, f in enumerate(files)]


def test_dfdc_winner_import_matches_the_original_module(
    winner_files: tuple[list[Path], list[WinnerClassifier]], tmp_path: Path, astronaut_rgb: np.ndarray
) -> None:
    files, originals = winner_files
    result = CliRunner().invoke(
        app, ["import-model", "dfdc-winner", *map(str, files), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    loaded = load_frame_model_dir(tmp_path)
    assert loaded.config.network.arch == "tf_efficientnet_b0"  # inferred from the shapes
    x = face_crops(astronaut_rgb, 380, normalise=True)
    with torch.no_grad():
        for member, original in zip(loaded.members, originals, strict=True):
            want = torch.sigmoid(original(x)).squeeze(1)
            got = member(x)
            assert torch.allclose(got, want, atol=1e-6), (got, want)
            assert abs(float(want[0] - want[1])) > 1e-4  # the crops are told apart
    card = json.loads((tmp_path / "config.json").read_text())["card"]
    assert card["family"] == "dfdc-winner" and "MIT" in card["licence"]
    assert [f["sha256"] for f in card["files"]] == [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    assert card["warnings"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json",
        "member-0.safetensors",
        "member-1.safetensors",
    ]


def test_sbi_import_matches_efficientnet_pytorch(tmp_path: Path, astronaut_rgb: np.ndarray) -> None:
    original = sbi_checkpoint(tmp_path / "FFraw.tar", face_crops(astronaut_rgb, 380, normalise=False))
    import_model("sbi", [tmp_path / "FFraw.tar"], tmp_path / "model")
    loaded = load_frame_model_dir(tmp_path / "model")
    assert loaded.config.network.arch == "efficientnet-b0"
    x = face_crops(astronaut_rgb, 380, normalise=False)
    with torch.no_grad():
        want = original(x).softmax(1)[:, 1]
        got = loaded.members[0](x)
    assert torch.allclose(got, want, atol=1e-6), (got, want)
    card = loaded.config.card
    assert "research" in card["licence"] and "RetinaFace" in " ".join(card["limits"])
    assert loaded.config.recipe.crop.rule == "margin-resize" and loaded.config.recipe.mean is None


def test_timm_frame_import_with_a_recipe(tmp_path: Path, astronaut_rgb: np.ndarray) -> None:
    import timm

    torch.manual_seed(3)
    sample = face_crops(astronaut_rgb, 224, normalise=True)
    original = _spread(timm.create_model("resnet18", pretrained=False, num_classes=1), sample)
    torch.save({"state_dict": original.state_dict()}, tmp_path / "r18.pth")
    (tmp_path / "recipe.yaml").write_text(
        "arch: resnet18\nnum_outputs: 1\noutput: sigmoid\n"
        "recipe: {frames: 8, crop: {rule: margin-resize, size: 224}, aggregation: mean}\n"
        "card: {licence: CC-BY-4.0, training_data: my lab's videos}\n"
    )
    import_model("timm-frame", [tmp_path / "r18.pth"], tmp_path / "m", recipe=tmp_path / "recipe.yaml")
    loaded = load_frame_model_dir(tmp_path / "m")
    x = face_crops(astronaut_rgb, 224, normalise=True)
    with torch.no_grad():
        assert torch.allclose(loaded.members[0](x), torch.sigmoid(original(x))[:, 0], atol=1e-6)
    assert loaded.config.card["licence"] == "CC-BY-4.0" and loaded.config.recipe.frames == 8


def test_a_truncated_checkpoint_is_refused_in_one_sentence(
    winner_files: tuple[list[Path], list[WinnerClassifier]], tmp_path: Path
) -> None:
    data = winner_files[0][0].read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        import_model("dfdc-winner", [tmp_path / "cut.pth"], tmp_path / "out")
    result = CliRunner().invoke(app, ["import-model", "dfdc-winner", str(tmp_path / "cut.pth"), "-o", "x"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_naming_the_global(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save(
        {"epoch": 1, "state_dict": {"module.fc.bias": torch.zeros(1)}, "x": _RunsCode(marker)},
        tmp_path / "evil.pth",
    )
    with pytest.raises(CheckpointError, match=r"(posix|os)\.system") as info:
        import_model("dfdc-winner", [tmp_path / "evil.pth"], tmp_path / "out")
    assert "not loaded" in str(info.value)
    assert not marker.exists()


def test_wrong_shapes_and_keys_are_named(
    winner_files: tuple[list[Path], list[WinnerClassifier]], tmp_path: Path
) -> None:
    checkpoint = torch.load(winner_files[0][0], weights_only=False)  # our own file, made by this test module
    state = dict(checkpoint["state_dict"])
    state["module.fc.weight"] = torch.zeros(1, 1000)
    torch.save({**checkpoint, "state_dict": state}, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match=r"fc\.weight \(1, 1000\) \(expected \(1, 1280\)\)"):
        import_model("dfdc-winner", [tmp_path / "shape.pth"], tmp_path / "out")
    state = dict(checkpoint["state_dict"])
    del state["module.encoder.conv_head.weight"]
    state["module.extra.weight"] = torch.zeros(3)
    torch.save({**checkpoint, "state_dict": state}, tmp_path / "keys.pth")
    with pytest.raises(
        CheckpointError, match=r"missing keys: encoder\.conv_head\.weight.*unexpected keys: extra\.weight"
    ):
        import_model("dfdc-winner", [tmp_path / "keys.pth"], tmp_path / "out")


def test_an_sbi_tar_without_model_entry_is_refused(tmp_path: Path) -> None:
    torch.save({"weights": {"net._fc.bias": torch.zeros(2)}, "epoch": 1}, tmp_path / "x.tar")
    with pytest.raises(CheckpointError, match="no 'model' entry"):
        import_model("sbi", [tmp_path / "x.tar"], tmp_path / "out")


def test_models_lists_families_and_a_frame_dir_is_not_a_sequence_model(
    winner_files: tuple[list[Path], list[WinnerClassifier]], tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    assert {f["family"] for f in json.loads(result.output)} == {"dfdc-winner", "sbi", "timm-frame"}
    import_model("dfdc-winner", winner_files[0][:1], tmp_path)
    shown = json.loads(CliRunner().invoke(app, ["models", str(tmp_path), "--json"]).output)
    assert shown["kind"] == "frame" and shown["card"]["files"][0]["name"] == winner_files[0][0].name
    with pytest.raises(ModelDirError, match="frame model"):
        read_model_config(tmp_path)


def test_format_1_directories_still_load_and_the_demo_kind_is_flagged(
    detect_model_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from deepfake_detect.inference.model_card import describe_model_dir
    from deepfake_detect.models.cards import SYNTHETIC_WARNING
    from deepfake_detect.models.io import load_model_dir

    old = tmp_path / "old"
    shutil.copytree(detect_model_dir, old)
    raw = json.loads((old / "config.json").read_text())
    assert raw["format_version"] == 2 and raw["kind"] == "sequence" and raw["card"] == {}
    legacy = {k: v for k, v in raw.items() if k not in ("kind", "card")} | {"format_version": 1}
    (old / "config.json").write_text(json.dumps(legacy))
    assert load_model_dir(old).config.backbone == "cnn4"
    assert describe_model_dir(old)["warnings"][0].startswith(SYNTHETIC_WARNING)
    assert describe_model_dir(detect_model_dir)["warnings"] == []  # format 2 without a card: nothing claimed
    (old / "config.json").write_text(json.dumps(legacy | {"backbone": "resnet50"}))
    assert describe_model_dir(old)["warnings"] == []
