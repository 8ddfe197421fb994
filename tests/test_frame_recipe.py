"""Frame-model recipes against hand-computed values: crop windows at frame edges, isotropic resize and
centre paste, SBI's margin and face filter, the winner's confident strategy, max-per-frame-then-mean."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from deepfake_detect.faces.crop_rules import (
    CROP_RULES,
    isotropic_resize,
    margin_box,
    padded_box,
    paste_centred,
)
from deepfake_detect.inference.frame_pipeline import collect_crops, sample_indices
from deepfake_detect.inference.frame_rules import FRAME_AGGREGATIONS, confident, max_face_mean_frame
from deepfake_detect.models.frame_dir import CropRecipe, FrameRecipe
from deepfake_detect.types import Frame


def test_winner_window_is_padded_by_a_third_and_clipped() -> None:
    # int box (10, 20, 70, 100): w 60, h 80 -> pads 20 and 26; clipped at the top, left and bottom
    assert padded_box((10.7, 20.2, 70.9, 100.5), 120, 100) == (0, 120, 0, 90)
    # inside the frame: (100, 50, 130, 95): w 30, h 45 -> pads 10 and 15
    assert padded_box((100.0, 50.0, 130.0, 95.0), 400, 400) == (35, 110, 90, 140)
    # a box hanging over the left edge (MTCNN boxes may be negative): int(-5.5) = -5
    assert padded_box((-5.5, 10.0, 25.0, 40.0), 100, 100) == (0, 50, 0, 35)


def test_sbi_window_has_an_eighth_margin_and_plus_one_on_the_far_side() -> None:
    # w = h = 80 -> margins 10: y0 = int(10.5), y1 = int(110.5) + 1, x0 = int(0.5), x1 = int(100.5) + 1
    assert margin_box((10.5, 20.5, 90.5, 100.5), 200, 200) == (10, 111, 0, 101)
    # w 49, h 39 -> margins 6.125, 4.875: y0 = int(155.125), x0 = int(143.875); far sides clipped at 200
    assert margin_box((150.0, 160.0, 199.0, 199.0), 200, 200) == (155, 200, 143, 200)


def test_isotropic_resize_enlarges_cubic_and_pastes_centred() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)  # h 120, w 90 -> 285 x 380 (w x h)
    resized = isotropic_resize(image, 380)
    assert resized.shape == (380, 285, 3)
    assert np.array_equal(resized, cv2.resize(image, (285, 380), interpolation=cv2.INTER_CUBIC))
    pasted = paste_centred(resized, 380)
    assert np.array_equal(pasted[:, 47:332], resized)  # x offset (380 - 285) // 2 = 47
    assert not pasted[:, :47].any() and not pasted[:, 332:].any()


def test_isotropic_resize_shrinks_with_area_and_centres_vertically() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (400, 500, 3), dtype=np.uint8)  # -> 380 x 304
    resized = isotropic_resize(image, 380)
    assert np.array_equal(resized, cv2.resize(image, (380, 304), interpolation=cv2.INTER_AREA))
    pasted = paste_centred(resized, 380)
    assert np.array_equal(pasted[38:342], resized) and not pasted[:38].any() and not pasted[342:].any()


def test_the_two_crop_rules_on_a_frame() -> None:
    frame = np.arange(200 * 300 * 3, dtype=np.uint32).reshape(200, 300, 3).astype(np.uint8)
    box = (100.0, 40.0, 160.0, 120.0)  # w 60, h 80
    winner = CROP_RULES.get("isotropic-pad")(frame, box, 64)
    window = frame[14:146, 80:180]  # pads 26 and 20
    assert winner is not None and np.array_equal(winner, paste_centred(isotropic_resize(window, 64), 64))
    sbi = CROP_RULES.get("margin-resize")(frame, box, 64)
    assert sbi is not None and np.array_equal(sbi, cv2.resize(frame[30:131, 92:168], (64, 64)))
    assert CROP_RULES.get("isotropic-pad")(frame, (-90.0, -90.0, -50.0, -50.0), 64) is None


class _FixedFaces:
    def __init__(self, faces: list[tuple[tuple[float, float, float, float], float]]) -> None:
        self.faces = faces

    def detect(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        return self.faces


def test_faces_under_half_the_largest_area_are_dropped() -> None:
    frame = Frame(index=3, timestamp=0.1, image=np.zeros((300, 300, 3), dtype=np.uint8))
    faces = [
        ((0.0, 0.0, 100.0, 100.0), 0.99),
        ((150.0, 0.0, 210.0, 60.0), 0.98),
        ((0.0, 150.0, 75.0, 225.0), 0.97),
    ]
    recipe = FrameRecipe(crop=CropRecipe(rule="margin-resize", size=32), min_face_area_ratio=0.5)
    kept = collect_crops([frame], _FixedFaces(faces), recipe)  # type: ignore[arg-type]
    assert [c.box for c in kept] == [faces[0][0], faces[2][0]]  # 3600 < 5000 <= 5625
    everything = collect_crops(
        [frame], _FixedFaces(faces), recipe.model_copy(update={"min_face_area_ratio": None})
    )  # type: ignore[arg-type]
    assert len(everything) == 3
    capped = collect_crops([frame, frame], _FixedFaces(faces), recipe.model_copy(update={"max_crops": 3}))  # type: ignore[arg-type]
    assert len(capped) == 3


def test_confident_strategy_by_hand() -> None:
    frames = np.zeros(20, dtype=int)
    fake = np.array([0.9] * 13 + [0.5] * 7)  # 13 > 20 // 2.5 = 8 and 13 > 11: mean of the confident fakes
    assert confident(fake, frames) == pytest.approx(0.9)
    real = np.array([0.1] * 19 + [0.6])  # 19 > 0.9 * 20 below 0.2: their mean
    assert confident(real, frames) == pytest.approx(0.1)
    mixed = np.array([0.9] * 11 + [0.1] * 9)  # 11 fakes is not > 11; 9 reals not > 18: plain mean
    assert confident(mixed, frames) == pytest.approx((0.9 * 11 + 0.1 * 9) / 20)
    many = np.array([0.95] * 12 + [0.3] * 28)  # 12 > 11 but not > 40 // 2.5 = 16: plain mean
    assert confident(many, np.zeros(40, dtype=int)) == pytest.approx((0.95 * 12 + 0.3 * 28) / 40)
    exactly = np.array([0.9] * 12)  # 12 > 12 // 2.5 = 4 and 12 > 11
    assert confident(exactly, np.zeros(12, dtype=int)) == pytest.approx(0.9)
    assert FRAME_AGGREGATIONS.get("confident") is confident


def test_max_over_faces_then_mean_over_frames() -> None:
    probs = np.array([0.1, 0.9, 0.3, 0.5, 0.2])
    frames = np.array([0, 0, 3, 3, 7])
    assert max_face_mean_frame(probs, frames) == pytest.approx((0.9 + 0.5 + 0.2) / 3)


def test_frames_are_sampled_like_the_publishers() -> None:
    assert sample_indices(10, 4) == [0, 3, 6, 9]
    assert sample_indices(300, 32)[:4] == [0, 9, 19, 28] and sample_indices(300, 32)[-1] == 299
    assert sample_indices(5, 32) == [0, 1, 2, 3, 4]  # repeated indices are read once
    assert sample_indices(0, 32) == []
