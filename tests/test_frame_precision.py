"""The precision of frame models on the CPU (issue 10, item 6): bf16 autocast + channels-last where
it keeps every crop's P(fake) within 0.01 of fp32, else fp32, decided per member by a measurement."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from deepfake_detect.inference.frame_pipeline import classify_crops
from deepfake_detect.inference.frame_precision import (
    check_precision,
    precision_checks,
    precision_label,
)
from deepfake_detect.models.frame import EncoderFC, FrameClassifier
from deepfake_detect.models.frame_dir import (
    FrameMember,
    FrameModelConfig,
    FrameRecipe,
    LoadedFrameModel,
    NetworkSpec,
)

SIZE = 112  # crop side: small, to keep the test fast (the precision rule does not depend on it)


def _real_crops(photo: np.ndarray, other: np.ndarray) -> list[np.ndarray]:
    """The astronaut's face, two crops beside it and the cameraman: uint8 (SIZE, SIZE, 3) RGB."""
    parts = [photo[60:330, 130:370], photo[230:500, 260:500], photo[0:270, 0:240], other[40:300, 180:420]]
    return [cv2.resize(p, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for p in parts]


def _spread_member(crops: list[np.ndarray], head: str = "principal", seed: int = 0) -> FrameClassifier:
    """A random-weight tf_efficientnet_b0 (the winner's layout) with BN statistics measured on the crops
    and an fc giving logits of std 2 over them, so that crops get different probabilities.

    ``head="principal"``: the fc reads the features' main direction of variation over the crops (as a
    trained head reads features that vary with the input); ``"random"``: a random fc direction, which
    reads mostly the features' common part, where this random network's bf16 error (5-15 % of the
    feature norm) is not small against the signal: bf16 then moves P(fake) by ~0.1."""
    torch.manual_seed(seed)
    network = EncoderFC("tf_efficientnet_b0", 1)
    x = _normalised(crops)
    for m in network.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    network.train()
    with torch.no_grad():
        network(x)
        network.eval()
        features = network.features(x)  # (N, 1280)
        if head == "principal":
            direction = torch.linalg.svd(features - features.mean(0), full_matrices=False)[2][0]
            network.fc.weight.copy_(direction[None])
        logits = features @ network.fc.weight.T  # (N, 1)
        scale = 2.0 / logits.std().clamp_min(1e-12)
        network.fc.weight.mul_(scale)
        network.fc.bias.fill_(float(-logits.mean() * scale))
    return FrameClassifier(network, "sigmoid").eval()


def _normalised(crops: list[np.ndarray]) -> torch.Tensor:
    x = torch.tensor(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    return (x - mean) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _loaded(member: FrameClassifier) -> LoadedFrameModel:
    config = FrameModelConfig(
        network=NetworkSpec(builder="timm-encoder-fc", arch="tf_efficientnet_b0", num_outputs=1),
        members=[FrameMember(file="member-0.safetensors", source="test", sha256="0" * 64)],
        recipe=FrameRecipe(),
    )
    return LoadedFrameModel(members=[member], config=config)


@pytest.fixture(scope="module")
def crops(astronaut_rgb: np.ndarray, camera_rgb: np.ndarray) -> list[np.ndarray]:
    gray = camera_rgb if camera_rgb.ndim == 3 else np.repeat(camera_rgb[..., None], 3, axis=2)
    return _real_crops(astronaut_rgb, gray)


@pytest.fixture(scope="module")
def members(crops: list[np.ndarray]) -> dict[str, FrameClassifier]:
    """Built once; each test takes a deep copy (a new member, so it decides its precision afresh)."""
    return {head: _spread_member(crops, head) for head in ("principal", "random")}


def _fp32_reference(member: FrameClassifier, crops: list[np.ndarray]) -> np.ndarray:
    """The straightforward fp32 NCHW forward pass of the same module (independent of classify_crops)."""
    with torch.no_grad():
        return member(_normalised(crops)).double().numpy()


def test_bf16_stays_within_001_of_fp32_on_real_face_crops(
    crops: list[np.ndarray], members: dict[str, FrameClassifier]
) -> None:
    member = copy.deepcopy(members["principal"])
    reference = _fp32_reference(member, crops)
    assert np.ptp(reference) > 0.1  # the crops really get different probabilities
    model = _loaded(member)
    probs = classify_crops(model, crops, batch_size=3, precision="bf16")  # bf16 even where emulated
    check = precision_checks(model.members)[0]
    assert check is not None and check["precision"] == "bf16" and check["crops"] == 4
    assert 0 < check["max_difference"] < 0.01  # measured, and bf16 really ran (fp32 would give ~1e-7)
    assert np.abs(probs[0] - reference).max() < 0.01
    assert np.abs(probs[0] - reference).max() > 1e-5
    assert precision_label(precision_checks(model.members), "bf16") == "bf16"


def test_bf16_falls_back_to_fp32_when_the_difference_is_not_below_the_tolerance(
    crops: list[np.ndarray], members: dict[str, FrameClassifier]
) -> None:
    member = copy.deepcopy(members["principal"])
    reference = _fp32_reference(member, crops)
    model = _loaded(member)
    probs = classify_crops(model, crops, batch_size=3, precision="bf16", tolerance=0.0)
    check = precision_checks(model.members)[0]
    assert check is not None and check["precision"] == "32" and check["max_difference"] > 0
    np.testing.assert_allclose(probs[0], reference, atol=1e-5)  # fp32 ran (channels-last: ~1e-7)
    assert precision_label(precision_checks(model.members), "auto") == "32"


def test_a_model_that_bf16_moves_by_more_than_001_runs_in_fp32(
    crops: list[np.ndarray], members: dict[str, FrameClassifier]
) -> None:
    member = copy.deepcopy(members["random"])
    reference = _fp32_reference(member, crops)
    model = _loaded(member)
    probs = classify_crops(model, crops, batch_size=3, precision="bf16")
    check = precision_checks(model.members)[0]
    assert check is not None and check["precision"] == "32" and check["max_difference"] >= 0.01
    np.testing.assert_allclose(probs[0], reference, atol=1e-5)


def test_the_rule_asks_for_native_bf16_in_auto_and_fp32_is_never_checked(
    crops: list[np.ndarray], members: dict[str, FrameClassifier], monkeypatch: pytest.MonkeyPatch
) -> None:
    member = members["principal"]
    x = _normalised(crops)
    assert check_precision(member, x, "32").precision == "32"
    monkeypatch.setattr("deepfake_detect.inference.frame_precision.bf16_supported", lambda _d: False)
    without = check_precision(member, x, "auto")
    assert without.precision == "32" and without.max_difference is None and "native" in without.reason
    monkeypatch.setattr("deepfake_detect.inference.frame_precision.bf16_supported", lambda _d: True)
    assert check_precision(member, x, "auto").precision == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        check_precision(member, x, "fp16")


def test_nothing_decided_yet_reads_auto_and_members_that_differ_read_mixed() -> None:
    assert precision_label([None], "auto") == "auto"
    bf16 = {"precision": "bf16"}
    fp32 = {"precision": "32"}
    assert precision_label([bf16, fp32], "auto") == "mixed"
    assert precision_label([bf16], "32") == "32"
