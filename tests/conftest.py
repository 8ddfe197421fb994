"""Shared pytest fixtures (append new fixtures; do not remove others')."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from deepfake_detect.faces import MTCNNDetector

# --- faces: real photographs and one MTCNN for the whole session ---------------------------------


def _read_only(image: np.ndarray) -> np.ndarray:
    image = np.ascontiguousarray(image)
    image.setflags(write=False)
    return image


@pytest.fixture(scope="session")
def astronaut_rgb() -> np.ndarray:
    """skimage's 512x512 colour portrait (one frontal face), uint8 RGB, read-only."""
    from skimage import data

    return _read_only(data.astronaut())


@pytest.fixture(scope="session")
def camera_rgb() -> np.ndarray:
    """skimage's 512x512 grey 'cameraman' (one face, near profile) as uint8 RGB, read-only."""
    from skimage import data

    return _read_only(np.repeat(data.camera()[:, :, None], 3, axis=2))


@pytest.fixture(scope="session")
def mtcnn_detector() -> MTCNNDetector:
    """One MTCNN face detector (facenet-pytorch, bundled weights) for the session; min face 20 px."""
    from deepfake_detect.faces import MTCNNDetector

    detector = MTCNNDetector(detect_max_side=640, min_face_size=20, score_threshold=0.9)
    detector.detect(np.zeros((64, 64, 3), dtype=np.uint8))  # load the networks once
    return detector
