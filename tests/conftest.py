"""Shared pytest fixtures (append new fixtures; do not remove others')."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
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


# --- service: a live server (tests/test_service.py, tests/test_browser.py) ---------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    upload_root: Path
    log: Path


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, detect_model_dir: Path) -> Iterator[LiveServer]:
    """``uvicorn --factory deepfake_detect.service.app:app_from_env`` in a subprocess on a free port.

    The tiny ``detect_model_dir`` model; 2 workers with one torch thread each, queue 8, uploads up to
    8 MB, spooled under ``upload_root``. Stopped at the end of the session.
    """
    import httpx

    root = tmp_path_factory.mktemp("live")
    upload_root = root / "uploads"
    upload_root.mkdir()
    port = _free_port()
    settings = {"workers": 2, "queue_size": 8, "max_upload_mb": 8, "upload_dir": str(upload_root)}
    settings["worker_threads"] = 1
    env = {
        **os.environ,
        "DEEPFAKE_DETECT_MODEL": str(detect_model_dir),
        "DEEPFAKE_DETECT_SERVICE_SETTINGS": json.dumps(settings),
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "deepfake_detect.service.app:app_from_env"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]
    log = root / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start in 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield LiveServer(url, process, upload_root, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- detect (test_inference.py, test_detect_cli.py, test_bad_inputs.py): a tiny real model, face clips ---


def _scene(photo: np.ndarray, side: int, i: int) -> np.ndarray:
    """A ``side`` px square view of a 512 px photo, drifting by a few pixels with frame ``i``."""
    import cv2

    x0, y0 = 40 + round(5 * np.sin(i / 3)), 10 + round(4 * np.cos(i / 4))
    return cv2.resize(photo[y0 : y0 + 440, x0 : x0 + 440], (side, side), interpolation=cv2.INTER_AREA)


def write_face_clip(
    path: Path,
    photos: list[np.ndarray],
    *,
    frames: int = 12,
    side: int = 160,
    fps: float = 12.0,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int | None = None,
    pts_ms: list[int] | None = None,
) -> Path:
    """Real faces (``photos`` side by side, each a drifting ``side`` px square) encoded with PyAV.

    ``rotation``: the pictures are stored turned by 90 degrees counter-clockwise and the stream gets a
    display rotation of ``rotation`` (-90 turns them back upright). ``pts_ms``: explicit presentation
    times in ms (variable frame rate).
    """
    from fractions import Fraction

    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.pix_fmt = pix_fmt
        if pts_ms is not None:
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            image = np.concatenate([_scene(photo, side, i) for photo in photos], axis=1)  # (S, n S, 3)
            if rotation is not None:
                image = np.ascontiguousarray(np.rot90(image, k=1))  # stored sideways
            if i == 0:
                stream.height, stream.width = image.shape[:2]
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def detect_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, untrained model folder: cnn4 at 64 px (32-d) + LSTM hidden 32 x 2 layers, random init.

    Faces: MTCNN, detection at <= 320 px, faces >= 20 px, 64 px crops. Clips: stride 1, clip_len 16,
    min_clip_len 8 (so a 12-frame clip is one scoring window).
    """
    import torch

    from deepfake_detect.config import ClipConfig, FaceConfig
    from deepfake_detect.models import FeatureExtractor, create_head
    from deepfake_detect.models.io import save_model_dir

    torch.manual_seed(0)
    extractor = FeatureExtractor("cnn4", 32, input_size=64).eval()
    kwargs = {"input_dim": 32, "hidden": 32, "layers": 2, "dropout": 0.0}
    head = create_head("lstm", **kwargs).eval()
    return save_model_dir(
        tmp_path_factory.mktemp("detect") / "model",
        extractor,
        head,
        head_name="lstm",
        head_kwargs=kwargs,
        threshold=0.5,
        faces=FaceConfig(detector="mtcnn", detect_max_side=320, min_face_size=20, crop_size=64),
        clips=ClipConfig(frame_stride=1, clip_len=16, min_clip_len=8),
    )


@pytest.fixture(scope="session")
def detect_media(
    tmp_path_factory: pytest.TempPathFactory, astronaut_rgb: np.ndarray, camera_rgb: np.ndarray
) -> dict[str, Path]:
    """Face clips shared by the detect tests: 'face' (astronaut, 28 frames, H.264), 'short' (6 frames),
    'two_seconds' (24 frames at 12 fps), 'faces2' (astronaut + cameraman side by side, 12 frames)."""
    root = tmp_path_factory.mktemp("detect-media")
    return {
        "face": write_face_clip(root / "face.mp4", [astronaut_rgb], frames=28),
        "short": write_face_clip(root / "short.mp4", [astronaut_rgb], frames=6),
        "two_seconds": write_face_clip(root / "two_seconds.mp4", [astronaut_rgb], frames=24, fps=12.0),
        "faces2": write_face_clip(root / "faces2.mp4", [astronaut_rgb, camera_rgb], frames=12, side=192),
    }


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the module (several helpers share 2 cores); restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def face_clip_writer() -> Callable[..., Path]:
    """:func:`write_face_clip` (real faces side by side, any codec, rotation, variable frame rate)."""
    return write_face_clip
