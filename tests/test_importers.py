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
from deepfake_detect.inference.options import DetectOptions
from deepfake_detect.models.frame_dir import load_frame_model_dir
from deepfake_detect.models.importers import CheckpointError, import_model
from deepfake_detect.models.io import ModelDirError, read_model_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")
FP32 = DetectOptions(precision="32")
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


# --- end to end: import -> detect on a real face video, against a straightforward re-computation --------


def _recompute_winner(video: Path, originals: list[WinnerClassifier]) -> tuple[float, dict[int, float], int]:
    """The winner's recipe written out plainly: PyAV frames, linspace(0, n - 1, 32), facenet MTCNN on the
    PIL half-size frame, int(box * 2) padded by a third, isotropic resize + centre paste, ImageNet
    normalisation, sigmoid, confident strategy per model, mean over models."""
    import av
    from facenet_pytorch import MTCNN
    from PIL import Image

    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    wanted = sorted(set(np.linspace(0, len(frames) - 1, 32, endpoint=True, dtype=int).tolist()))
    mtcnn = MTCNN(margin=0, thresholds=[0.7, 0.8, 0.8])
    crops, frame_of = [], []
    for index in wanted:
        frame = frames[index]
        image = Image.fromarray(frame)
        boxes, _ = mtcnn.detect(image.resize(size=[s // 2 for s in image.size]), landmarks=False)
        for box in [] if boxes is None else np.asarray(boxes).astype(float):
            x1, y1, x2, y2 = (int(b * 2) for b in box)
            ph, pw = (y2 - y1) // 3, (x2 - x1) // 3
            face = frame[max(y1 - ph, 0) : y2 + ph, max(x1 - pw, 0) : x2 + pw]
            h, w = face.shape[:2]
            scale = 380 / max(h, w)
            size = (380, int(h * scale)) if w > h else (int(w * scale), 380)
            face = cv2.resize(face, size, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
            canvas = np.zeros((380, 380, 3), dtype=np.uint8)
            top, left = (380 - face.shape[0]) // 2, (380 - face.shape[1]) // 2
            canvas[top : top + face.shape[0], left : left + face.shape[1]] = face
            crops.append(canvas)
            frame_of.append(index)
    x = torch.tensor(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        preds = np.stack([torch.sigmoid(m(x)).squeeze(1).numpy() for m in originals])  # (K, M)
    per_model = []
    for p in preds:
        fakes = np.count_nonzero(p > 0.8)
        if fakes > len(p) // 2.5 and fakes > 11:
            per_model.append(p[p > 0.8].mean())
        elif np.count_nonzero(p < 0.2) > 0.9 * len(p):
            per_model.append(p[p < 0.2].mean())
        else:
            per_model.append(p.mean())
    mean_crop = preds.mean(axis=0)
    per_frame = {f: float(max(mean_crop[i] for i, g in enumerate(frame_of) if g == f)) for f in set(frame_of)}
    return float(np.mean(per_model)), per_frame, len(crops)


@pytest.mark.slow
def test_import_then_detect_equals_the_recipe_recomputed(
    winner_files: tuple[list[Path], list[WinnerClassifier]], detect_media: dict[str, Path], tmp_path: Path
) -> None:
    from deepfake_detect.inference import Detector

    files, originals = winner_files
    import_model("dfdc-winner", files, tmp_path / "model")
    # fp32: this checks the recipe's exactness (bf16 is tested in test_frame_precision)
    detector = Detector.load(tmp_path / "model", options=FP32)
    result = detector.detect(detect_media["faces2"])
    assert result.status.value == "ok", result.error
    video_p, per_frame, n_crops = _recompute_winner(detect_media["faces2"], originals)
    assert result.fake_probability == pytest.approx(video_p, abs=1e-5)
    assert result.info["crops"] == n_crops and n_crops >= 12  # two faces in most of the 12 frames
    got = {row["frame"]: row["fake_probability"] for row in result.info["frame_probabilities"]}
    assert got.keys() == per_frame.keys()
    assert all(got[f] == pytest.approx(per_frame[f], abs=1e-5) for f in per_frame)
    assert {len(f.timeline) for f in result.faces} and sum(f.n_frames for f in result.faces) == n_crops
    info = detector.model_info()
    assert info["kind"] == "frame" and info["card"]["family"] == "dfdc-winner" and info["warnings"] == []
    assert info["precision"] == "32" and [c["precision"] for c in info["precision_checks"]] == ["32", "32"]


def test_serve_answers_with_the_card(
    winner_files: tuple[list[Path], list[WinnerClassifier]], detect_media: dict[str, Path], tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from deepfake_detect.service import ServiceSettings, create_app

    import_model("dfdc-winner", winner_files[0][:1], tmp_path / "model")
    settings = ServiceSettings(workers=1, queue_size=1, upload_dir=tmp_path, worker_threads=1)
    with TestClient(create_app(tmp_path / "model", settings)) as client:
        model = client.get("/v1/model").json()
        assert (
            model["card"]["files"][0]["sha256"] == hashlib.sha256(winner_files[0][0].read_bytes()).hexdigest()
        )
        assert model["warnings"] == []
        video = detect_media["face"]
        answer = client.post("/v1/detect", files={"file": (video.name, video.read_bytes(), "video/mp4")})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"]["card"] == model["card"]
        video_json = body["videos"][0]
        assert video_json["status"] == "ok" and 0.0 <= video_json["fake_probability"] <= 1.0
        assert video_json["faces"][0]["timeline"]  # per-frame P(fake) of the face


def _recompute_sbi(video: Path, original: nn.Module) -> tuple[float, int]:
    """SBI's recipe written out plainly, with our MTCNN settings in place of RetinaFace: PyAV frames,
    linspace(0, n - 1, 32), faces below half the largest area dropped, margins of an eighth (int, +1 on the
    far side), plain resize to 380, RGB / 255, softmax[:, 1], max per frame, mean over frames."""
    import av
    from facenet_pytorch import MTCNN
    from PIL import Image

    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    mtcnn = MTCNN(margin=0, thresholds=[0.6, 0.7, 0.7])
    per_frame = []
    for index in sorted(set(np.linspace(0, len(frames) - 1, 32, endpoint=True, dtype=int).tolist())):
        frame = frames[index]
        image = Image.fromarray(frame)
        boxes, _ = mtcnn.detect(image.resize(size=[s // 2 for s in image.size]), landmarks=False)
        if boxes is None:
            continue
        boxes = np.asarray(boxes).astype(float) * 2
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        crops = []
        for (x0, y0, x1, y1), area in zip(boxes, areas, strict=True):
            if area < areas.max() / 2:
                continue
            w, h = x1 - x0, y1 - y0
            top, bottom = max(0, int(y0 - h / 8)), min(frame.shape[0], int(y1 + h / 8) + 1)
            left, right = max(0, int(x0 - w / 8)), min(frame.shape[1], int(x1 + w / 8) + 1)
            crops.append(cv2.resize(frame[top:bottom, left:right], (380, 380)))
        x = torch.tensor(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
        with torch.no_grad():
            per_frame.append(float(original(x).softmax(1)[:, 1].max()))
    return float(np.mean(per_frame)), len(per_frame)


@pytest.mark.slow
def test_sbi_import_then_detect_equals_the_recipe_recomputed(
    detect_media: dict[str, Path], tmp_path: Path, astronaut_rgb: np.ndarray
) -> None:
    from deepfake_detect.inference import Detector

    original = sbi_checkpoint(tmp_path / "FFraw.tar", face_crops(astronaut_rgb, 380, normalise=False))
    import_model("sbi", [tmp_path / "FFraw.tar"], tmp_path / "model")
    result = Detector.load(tmp_path / "model", options=FP32).detect(detect_media["faces2"])
    assert result.status.value == "ok", result.error
    video_p, n_frames = _recompute_sbi(detect_media["faces2"], original)
    assert len(result.info["frame_probabilities"]) == n_frames == 12
    assert result.fake_probability == pytest.approx(video_p, abs=1e-5)
