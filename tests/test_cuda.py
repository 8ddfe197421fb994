"""The CUDA path: face detection, embedding, detect and extractor training on a GPU agree with the CPU.

Skipped where torch sees no CUDA device (CI has none); run on a lent GPU machine with
``python -m pytest tests/test_cuda.py`` (results of such a run are in benchmarks/RESULTS.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_detect.faces import MTCNNDetector
from deepfake_detect.inference import DetectOptions, Detector
from deepfake_detect.inference.engine import create_engine

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_mtcnn_on_cuda_finds_the_face_the_cpu_finds(astronaut_rgb: np.ndarray) -> None:
    on_cpu = MTCNNDetector(detect_max_side=640, min_face_size=20).detect(astronaut_rgb)
    on_gpu = MTCNNDetector(detect_max_side=640, min_face_size=20, device="cuda").detect(astronaut_rgb)
    assert len(on_cpu) == len(on_gpu) == 1
    assert on_cpu[0].box.iou(on_gpu[0].box) > 0.95
    assert on_gpu[0].score == pytest.approx(on_cpu[0].score, abs=1e-3)


def test_engine_on_cuda_embeds_like_the_cpu(detect_model_dir: Path) -> None:
    crops = np.random.default_rng(0).integers(0, 256, size=(10, 64, 64, 3), dtype=np.uint8)
    cpu = create_engine("torch", detect_model_dir, device="cpu", precision="32").embed(crops)  # (10, D)
    fp32 = create_engine("torch", detect_model_dir, device="cuda", precision="32").embed(crops)
    bf16 = create_engine("torch", detect_model_dir, device="cuda", precision="bf16").embed(crops)
    np.testing.assert_allclose(fp32, cpu, rtol=1e-3, atol=1e-4)
    cosine = (bf16 * cpu).sum(1) / (np.linalg.norm(bf16, axis=1) * np.linalg.norm(cpu, axis=1))
    assert cosine.min() > 0.99


@pytest.mark.parametrize("precision", ["32", "auto"])
def test_detect_on_cuda_matches_the_cpu(
    detect_model_dir: Path, detect_media: dict[str, Path], precision: str
) -> None:
    video = detect_media["faces2"]  # two real faces side by side
    cpu = Detector.load(detect_model_dir, options=DetectOptions(precision="32")).detect(video)
    gpu_detector = Detector.load(detect_model_dir, device="cuda", options=DetectOptions(precision=precision))
    gpu = gpu_detector.detect(video)
    assert cpu.ok and gpu.ok and len(cpu.faces) == len(gpu.faces) == 2
    assert [f.n_frames for f in gpu.faces] == [f.n_frames for f in cpu.faces]
    tolerance = 1e-3 if precision == "32" else 0.02
    for mine, theirs in zip(gpu.faces, cpu.faces, strict=True):
        assert mine.fake_probability == pytest.approx(theirs.fake_probability, abs=tolerance)
    assert gpu_detector.model_info()["device"] == "cuda"


def test_extractor_trains_on_cuda(tmp_path: Path) -> None:
    from deepfake_detect.training import train_extractor
    from test_training import make_store, tiny_config  # the tiny store of the training tests

    store = make_store(tmp_path / "store")
    config = tiny_config("extractor.epochs=1", "extractor.precision='bf16-mixed'")
    run = train_extractor(
        config, store, store.clips(), None, tmp_path / "run", progress=False, accelerator="gpu"
    )
    assert run.history["epoch"].tolist() == [1]
    assert all(torch.isfinite(p).all() for p in run.extractor.parameters())
