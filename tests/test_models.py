"""Backbones, the feature extractor, sequence heads and model directories (tiny sizes, CPU)."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from deepfake_detect.config import ClipConfig, FaceConfig
from deepfake_detect.models import (
    BACKBONES,
    SEQUENCE_HEADS,
    FeatureExtractor,
    ModelDirError,
    WeightsError,
    create_backbone,
    create_head,
    load_model_dir,
    save_model_dir,
)
from deepfake_detect.models.heads import LSTMHead
from deepfake_detect.registry import UnknownNameError

PREFIX_EXAMPLES = {"timm:": "timm:resnet18"}  # one small model per prefix family
TINY_SIZE = {"cnn4": 32, "resnet50": 32, "inception_resnet_v2": 75, "timm:resnet18": 32}  # 75: its minimum
DEFAULTS = {  # name -> (input_size, out_features, mean[0])
    "cnn4": (128, 256, 0.485),
    "resnet50": (224, 2048, 0.485),
    "inception_resnet_v2": (299, 1536, 0.5),
    "timm:resnet18": (224, 512, 0.485),
}
BACKBONE_CASES = BACKBONES.names() + [PREFIX_EXAMPLES.get(p, p) for p in BACKBONES.prefixes()]


@pytest.fixture(autouse=True)
def _offline_single_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No hub access; one intra-op thread (tiny tensors: threads only add overhead on shared cores)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _first_param_grad(module: nn.Module) -> torch.Tensor:
    grad = next(iter(module.parameters())).grad
    assert grad is not None
    return grad


# --- backbones ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BACKBONE_CASES)
def test_every_backbone_runs_forward_and_backward(name: str) -> None:
    assert name in DEFAULTS, f"add {name!r} to DEFAULTS and TINY_SIZE (and PREFIX_EXAMPLES for a prefix)"
    backbone = create_backbone(name)
    size, features, mean0 = DEFAULTS[name]
    assert (backbone.input_size, backbone.out_features, backbone.mean[0]) == (size, features, mean0)
    x = torch.randn(2, 3, TINY_SIZE[name], TINY_SIZE[name])
    for train in (True, False):
        backbone.train(train)
        backbone.zero_grad()
        out = backbone(x)  # (2, F)
        assert out.shape == (2, features)
        out.square().mean().backward()
        grad = _first_param_grad(backbone)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, f"no gradient at {name}'s first layer"


def test_input_size_override_and_minimum() -> None:
    assert create_backbone("resnet50", input_size=64).input_size == 64  # the demo's CPU setting
    extractor = FeatureExtractor("cnn4", embed_dim=8, input_size=48)
    assert extractor.prepare(torch.zeros(1, 10, 20, 3, dtype=torch.uint8)).shape == (1, 3, 48, 48)
    with pytest.raises(ValueError, match="input_size >= 75"):
        create_backbone("inception_resnet_v2", input_size=64)


def test_unknown_backbones_get_suggestions() -> None:
    with pytest.raises(UnknownNameError, match="resnet50"):
        create_backbone("resnet5")
    with pytest.raises(UnknownNameError, match="timm:resnet18"):
        create_backbone("timm:resnet188")


def _params_equal(a: nn.Module, b: nn.Module) -> bool:
    return all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_weights_from_safetensors_and_state_dicts(tmp_path: Path) -> None:
    source = create_backbone("cnn4")
    st = tmp_path / "cnn4.safetensors"
    save_file(source.body.state_dict(), str(st))
    assert _params_equal(create_backbone("cnn4", weights=st), source)
    pt = tmp_path / "ddp_checkpoint.pt"  # DDP-prefixed keys nested in a checkpoint dict
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.body.state_dict().items()}}, pt)
    assert _params_equal(create_backbone("cnn4", weights=pt), source)
    extractor = FeatureExtractor("cnn4", embed_dim=4, weights=st)
    assert _params_equal(extractor.backbone, source)


def test_pretrained_file_with_classifier_loads(tmp_path: Path) -> None:
    import timm

    full = timm.create_model("resnet18", pretrained=False)  # still has its 1000-class fc
    path = tmp_path / "resnet18.pth"
    torch.save(full.state_dict(), path)
    backbone = create_backbone("timm:resnet18", weights=path)
    assert torch.equal(backbone.body.conv1.weight, full.conv1.weight)


def test_bad_weight_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.safetensors"):
        create_backbone("cnn4", weights=tmp_path / "nope.safetensors")
    state = create_backbone("cnn4").body.state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["0.weight"]
    save_file(state, str(tmp_path / "keys.safetensors"))
    with pytest.raises(WeightsError, match=r"missing keys: 0\.weight.*unexpected keys: extra\.weight"):
        create_backbone("cnn4", weights=tmp_path / "keys.safetensors")
    save_file(create_backbone("timm:resnet18").body.state_dict(), str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsError, match="does not fit"):
        create_backbone("cnn4", weights=tmp_path / "other.safetensors")
    torch.save(nn.Linear(2, 2), tmp_path / "module.pt")  # a pickled module, not a state dict
    with pytest.raises(WeightsError, match="weights_only"):
        create_backbone("cnn4", weights=tmp_path / "module.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(WeightsError, match="safetensors"):
        create_backbone("cnn4", weights=tmp_path / "junk.safetensors")


# --- feature extractor ----------------------------------------------------------------------------


def test_extractor_shapes_and_channels_last() -> None:
    extractor = FeatureExtractor("cnn4", embed_dim=12, input_size=32).eval()
    frames = torch.randint(0, 256, (3, 40, 50, 3), dtype=torch.uint8)
    x = extractor.prepare(frames)  # (3, 3, 32, 32)
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        plain = extractor(x.contiguous())  # (3, 12)
        cl = extractor.to(memory_format=torch.channels_last)(x)
        seq = extractor.forward_sequence(x.unsqueeze(0))  # (1, 3, 12)
    assert plain.shape == (3, 12) and seq.shape == (1, 3, 12)
    torch.testing.assert_close(cl, plain, atol=1e-5, rtol=1e-5)


def test_prepare_normalises_exactly() -> None:
    extractor = FeatureExtractor("inception_resnet_v2", embed_dim=4, input_size=80)  # mean = std = 0.5
    frames = np.full((2, 37, 91, 3), 200, dtype=np.uint8)
    frames[1] = 51
    x = extractor.prepare(frames)
    torch.testing.assert_close(x[0], torch.full((3, 80, 80), (200 / 255 - 0.5) / 0.5))
    torch.testing.assert_close(x[1], torch.full((3, 80, 80), (51 / 255 - 0.5) / 0.5))


def test_prepare_resizes_like_pil_bilinear(astronaut_rgb: np.ndarray) -> None:
    extractor = FeatureExtractor("cnn4", embed_dim=4, input_size=64)
    photo = astronaut_rgb[40:440, 60:360]  # 400 x 300 face photo, downscaled ~6x (antialias matters)
    x = extractor.prepare(photo[None])[0]  # (3, 64, 64)
    mean = torch.tensor(extractor.mean).view(3, 1, 1)
    std = torch.tensor(extractor.std).view(3, 1, 1)
    pixels = ((x * std + mean) * 255).permute(1, 2, 0).numpy()  # (64, 64, 3) in 0..255
    reference = np.asarray(Image.fromarray(photo).resize((64, 64), Image.Resampling.BILINEAR), dtype=float)
    assert np.abs(pixels - reference).max() < 1.5  # PIL rounds to uint8


def test_prepare_rejects_bad_frames() -> None:
    extractor = FeatureExtractor("cnn4", embed_dim=4, input_size=32)
    with pytest.raises(TypeError, match="uint8"):
        extractor.prepare(torch.zeros(1, 8, 8, 3))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        extractor.prepare(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


# --- sequence heads -------------------------------------------------------------------------------


def _batch(d: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(3, 5, d), torch.tensor([5, 2, 3])  # (B, T, D), (B,)


@pytest.mark.parametrize("name", SEQUENCE_HEADS.names())
def test_every_head_runs_forward_and_backward(name: str) -> None:
    head = create_head(name, input_dim=6, hidden=8, layers=2, dropout=0.3)
    x, lengths = _batch()
    for train in (True, False):
        head.train(train)
        head.zero_grad()
        logits = head(x, lengths)  # (B,)
        assert logits.shape == (3,)
        logits.sum().backward()
        grad = _first_param_grad(head)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("name", SEQUENCE_HEADS.names())
def test_padding_never_changes_the_output(name: str) -> None:
    head = create_head(name, input_dim=6, hidden=8, layers=2).eval()
    x, lengths = _batch()
    with torch.no_grad():
        reference = head(x, lengths)
        garbage = x.clone()
        garbage[1, 2:] = float("nan")  # inside the batch's padding
        garbage[2, 3:] = 1e6
        longer = torch.cat([garbage, torch.full((3, 4, 6), float("nan"))], dim=1)  # (3, 9, 6)
        torch.testing.assert_close(head(garbage, lengths), reference)
        torch.testing.assert_close(head(longer, lengths), reference)
        one_by_one = torch.cat([head(x[b : b + 1, : lengths[b]], lengths[b : b + 1]) for b in range(3)])
    torch.testing.assert_close(one_by_one, reference, atol=1e-6, rtol=1e-5)


def test_paper_defaults() -> None:
    lstm = create_head("lstm")
    assert isinstance(lstm, LSTMHead)
    assert (lstm.lstm.num_layers, lstm.lstm.hidden_size, lstm.lstm.input_size) == (4, 512, 512)
    assert lstm.lstm.dropout == pytest.approx(0.3) and lstm.lstm.batch_first
    for name in ("mlp", "frame-mlp"):
        head = create_head(name)
        assert sum(isinstance(m, nn.Linear) for m in head.modules()) == 4


def test_lstm_uses_the_last_valid_hidden_state() -> None:
    head = create_head("lstm", input_dim=6, hidden=8, layers=2)
    assert isinstance(head, LSTMHead)
    head.eval()
    x, lengths = _batch()
    with torch.no_grad():
        got = head(x, lengths)
        expected = []
        for b in range(3):  # plain nn.LSTM on the unpadded clip, its final output step
            out, _ = head.lstm(x[b : b + 1, : lengths[b]])
            expected.append(head.out(out[:, -1]).squeeze())
        torch.testing.assert_close(got, torch.stack(expected), atol=1e-6, rtol=1e-5)
        gathered = head.out(head._last_by_gather(x, lengths)).squeeze(-1)  # the ONNX-export path
        torch.testing.assert_close(gathered, got, atol=1e-6, rtol=1e-5)
        assert not torch.allclose(head(x.flip(1), torch.full((3,), 5)), head(x, torch.full((3,), 5)))


def test_mlp_is_order_blind_and_frame_mlp_averages_frame_logits() -> None:
    x, lengths = _batch()
    mean_head = create_head("mlp", input_dim=6, hidden=8, layers=3).eval()
    frame_head = create_head("frame-mlp", input_dim=6, hidden=8, layers=3).eval()
    shuffled = x.clone()
    shuffled[0] = x[0, torch.randperm(5)]
    with torch.no_grad():
        torch.testing.assert_close(mean_head(shuffled, lengths), mean_head(x, lengths))
        per_frame = frame_head.mlp(x).squeeze(-1)  # (B, T)
        expected = torch.stack([per_frame[b, : lengths[b]].mean() for b in range(3)])
        torch.testing.assert_close(frame_head(x, lengths), expected)


@pytest.mark.parametrize(
    "lengths",
    [torch.tensor([5, 0, 3]), torch.tensor([6, 2, 3]), torch.tensor([5.0, 2, 3]), torch.tensor([5, 2])],
)
def test_heads_reject_bad_lengths(lengths: torch.Tensor) -> None:
    x, _ = _batch()
    for name in SEQUENCE_HEADS.names():
        with pytest.raises(ValueError, match="lengths"):
            create_head(name, input_dim=6, hidden=4, layers=1)(x, lengths)


# --- model directories ----------------------------------------------------------------------------


def _save_tiny(path: Path, head_name: str = "lstm") -> tuple[FeatureExtractor, nn.Module]:
    extractor = FeatureExtractor("cnn4", embed_dim=6, input_size=32)
    kwargs = {"input_dim": 6, "hidden": 8, "layers": 2, "dropout": 0.3}
    head = create_head(head_name, **kwargs)
    faces, clips = FaceConfig(margin=0.3), ClipConfig(clip_len=20, min_clip_len=8)
    save_model_dir(
        path, extractor, head, head_name=head_name, head_kwargs=kwargs, threshold=0.4,
        faces=faces, clips=clips, extra={"note": "tiny"},
    )  # fmt: skip
    return extractor, head


@pytest.mark.parametrize("head_name", SEQUENCE_HEADS.names())
def test_model_dir_round_trip(tmp_path: Path, head_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    extractor, head = _save_tiny(tmp_path / "model", head_name)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "config.json", "extractor.safetensors", "head.safetensors"
    ]  # fmt: skip

    def no_unpickling(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model directory must never be unpickled")

    for target in (torch, pickle):
        monkeypatch.setattr(target, "load", no_unpickling)
    loaded = load_model_dir(tmp_path / "model")
    assert not loaded.extractor.training and not loaded.head.training
    cfg = loaded.config
    assert (cfg.backbone, cfg.embed_dim, cfg.input_size, cfg.threshold) == ("cnn4", 6, 32, 0.4)
    assert cfg.head == head_name and cfg.head_kwargs["hidden"] == 8
    assert cfg.face_config() == FaceConfig(margin=0.3) and cfg.clip_config().clip_len == 20
    assert cfg.extra == {"note": "tiny"} and cfg.format_version == 2
    frames = torch.randint(0, 256, (4, 50, 40, 3), dtype=torch.uint8)
    extractor.eval()
    head.eval()
    with torch.no_grad():
        emb = extractor(extractor.prepare(frames))  # (4, 6)
        emb2 = loaded.extractor(loaded.extractor.prepare(frames))
        seq, lengths = emb.view(2, 2, 6), torch.tensor([2, 1])
        assert torch.equal(emb, emb2)
        assert torch.equal(head(seq, lengths), loaded.head(seq, lengths))


def test_model_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelDirError, match="not found"):
        load_model_dir(tmp_path / "absent")
    model = tmp_path / "model"
    _save_tiny(model)
    raw = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**raw, "format_version": 99}))
    with pytest.raises(ModelDirError, match="upgrade"):
        load_model_dir(model)
    wider = {**raw["head_kwargs"], "hidden": 16}
    (model / "config.json").write_text(json.dumps({**raw, "head_kwargs": wider}))
    with pytest.raises(WeightsError, match="shape mismatches"):
        load_model_dir(model)
    (model / "config.json").write_text(json.dumps({**raw, "head_kwargs": {"width": 3}}))
    with pytest.raises(ModelDirError, match="head_kwargs"):
        load_model_dir(model)
    (model / "config.json").write_text("{not json")
    with pytest.raises(ModelDirError, match="not valid JSON"):
        load_model_dir(model)
    (model / "head.safetensors").unlink()
    with pytest.raises(ModelDirError, match=r"missing head\.safetensors"):
        load_model_dir(model)


def test_save_rejects_unknown_head_and_unserialisable_extra(tmp_path: Path) -> None:
    extractor, head = FeatureExtractor("cnn4", embed_dim=4, input_size=32), create_head("mlp", input_dim=4)
    faces, clips = FaceConfig(), ClipConfig()
    with pytest.raises(UnknownNameError, match="gru"):
        save_model_dir(
            tmp_path / "a",
            extractor,
            head,
            head_name="gru",
            head_kwargs={},
            threshold=0.5,
            faces=faces,
            clips=clips,
        )
    with pytest.raises(ModelDirError, match=r"config\.json"):
        save_model_dir(
            tmp_path / "b", extractor, head, head_name="mlp", head_kwargs={}, threshold=0.5, faces=faces,
            clips=clips, extra={"x": object()},
        )  # fmt: skip
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
