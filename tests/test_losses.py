"""The cosine-similarity hinge loss against hand-computed values and a numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepfake_detect.losses import cosine_similarity_matrix, similarity_hinge_loss


def _numpy_loss(emb: np.ndarray, labels: np.ndarray, margin: float, window: int | None) -> float:
    """Independent reference written with loops, straight from the paper's equations."""
    losses = []
    for clip, y in zip(emb, labels, strict=True):
        t = clip.shape[0]
        total, count = 0.0, 0
        for i in range(t):
            for j in range(t):
                if window is not None and abs(i - j) > window:
                    continue
                cos = clip[i] @ clip[j] / (np.linalg.norm(clip[i]) * np.linalg.norm(clip[j]))
                total += abs(cos - (1.0 if i == j else 0.0))
                count += 1
        l1 = total / count
        losses.append(l1 if y == 1 else max(0.0, margin - l1))
    return float(np.mean(losses))


def test_orthogonal_embeddings_are_the_fake_target() -> None:
    emb = (torch.eye(5) * torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0]).unsqueeze(1)).unsqueeze(0)  # (1, 5, 5)
    assert similarity_hinge_loss(emb, torch.tensor([1])).item() == pytest.approx(0.0, abs=1e-7)
    assert similarity_hinge_loss(emb, torch.tensor([0])).item() == pytest.approx(1.0)
    assert similarity_hinge_loss(emb, torch.tensor([0]), margin=0.5).item() == pytest.approx(0.5)


@pytest.mark.parametrize("t", [2, 4, 7])
def test_identical_embeddings(t: int) -> None:
    emb = torch.randn(1, 1, 6).repeat(1, t, 1) * torch.linspace(0.5, 2.0, t).view(1, t, 1)  # (1, T, 6)
    fake = similarity_hinge_loss(emb, torch.tensor([1]))
    real = similarity_hinge_loss(emb, torch.tensor([0]))
    assert fake.item() == pytest.approx((t - 1) / t, abs=1e-6)
    assert real.item() == pytest.approx(1 / t, abs=1e-6)


def test_a_real_clip_beyond_the_margin_costs_nothing() -> None:
    """The hinge clamps: L1 = 3/4 for four identical frames; with margin 0.5 a real clip's loss is 0
    (not 0.5 - 0.75 < 0) and it gets no gradient, while a real clip below the margin still does."""
    emb = torch.randn(1, 1, 6).repeat(1, 4, 1).requires_grad_(True)  # (1, 4, 6): L1 = 3/4
    loss = similarity_hinge_loss(emb, torch.tensor([0]), margin=0.5)
    assert loss.item() == 0.0
    loss.backward()
    assert emb.grad is not None and float(emb.grad.abs().max()) == 0.0
    rng = np.random.default_rng(1)
    mixed = rng.normal(size=(3, 4, 6))
    mixed[0] = mixed[0, :1]  # clip 0: identical frames, L1 = 3/4 > margin
    labels = np.array([0, 0, 1])
    got = similarity_hinge_loss(torch.from_numpy(mixed), torch.from_numpy(labels), margin=0.5)
    assert got.item() == pytest.approx(_numpy_loss(mixed, labels, 0.5, None), abs=1e-10)


@pytest.mark.parametrize("window", [None, 1, 2])
def test_random_batch_matches_numpy_reference(window: int | None) -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(4, 6, 5))  # (B, T, D)
    labels = np.array([1, 0, 0, 1])
    got = similarity_hinge_loss(torch.from_numpy(emb), torch.from_numpy(labels), window=window)
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(_numpy_loss(emb, labels, 1.0, window), abs=1e-10)
    per_clip = similarity_hinge_loss(torch.from_numpy(emb), torch.from_numpy(labels), reduction="none")
    assert per_clip.shape == (4,)
    assert per_clip.mean().item() == pytest.approx(_numpy_loss(emb, labels, 1.0, None), abs=1e-10)


def test_window_restricts_the_mean_to_the_band() -> None:
    # Orthogonal neighbours, identical frames two apart: the band |i-j| <= 1 sees only zeros
    # off the diagonal, the full matrix also sees the |S| = 1 entries at distance 2.
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    emb = torch.stack([e0, e1, e0, e1]).unsqueeze(0)  # (1, 4, 2)
    fake = torch.tensor([1])
    assert similarity_hinge_loss(emb, fake, window=1).item() == pytest.approx(0.0)
    assert similarity_hinge_loss(emb, fake, window=2).item() == pytest.approx(4 / 14)  # 4 ones of 14 entries
    assert similarity_hinge_loss(emb, fake).item() == pytest.approx(4 / 16)


def test_zero_vectors_have_finite_loss_and_gradient() -> None:
    emb = torch.zeros(2, 4, 3, requires_grad=True)
    loss = similarity_hinge_loss(emb, torch.tensor([1, 0]))
    loss.backward()
    assert torch.isfinite(loss)
    assert emb.grad is not None and torch.isfinite(emb.grad).all()


def test_gradient_steps_move_frames_the_documented_way() -> None:
    """Descending the fake loss decorrelates frames; descending the real loss aligns them."""
    torch.manual_seed(0)
    start = torch.randn(1, 6, 8)
    for label, direction in ((1, -1.0), (0, 1.0)):
        emb = start.clone().requires_grad_(True)
        before = cosine_similarity_matrix(emb).abs().sum().item()
        opt = torch.optim.SGD([emb], lr=0.5)
        for _ in range(20):
            opt.zero_grad()
            similarity_hinge_loss(emb, torch.tensor([label])).backward()
            opt.step()
        after = cosine_similarity_matrix(emb.detach()).abs().sum().item()
        assert direction * (after - before) > 0.5


def test_cosine_matrix_matches_numpy() -> None:
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(2, 3, 4))
    unit = emb / np.linalg.norm(emb, axis=-1, keepdims=True)
    expected = np.einsum("btd,bsd->bts", unit, unit)
    np.testing.assert_allclose(cosine_similarity_matrix(torch.from_numpy(emb)).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize(
    ("emb_shape", "labels", "kwargs", "match"),
    [
        ((2, 3, 4), [1, -1], {}, "1 \\(fake\\) or 0 \\(real\\)"),
        ((2, 3, 4), [1, 0, 1], {}, "labels must be shaped"),
        ((3, 4), [1, 0, 1], {}, "B, T, D"),
        ((2, 3, 4), [1, 0], {"window": 0}, "window"),
        ((2, 3, 4), [1, 0], {"reduction": "sum"}, "reduction"),
    ],
)
def test_bad_arguments_raise(emb_shape, labels, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        similarity_hinge_loss(torch.randn(*emb_shape), torch.tensor(labels), **kwargs)
