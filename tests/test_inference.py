"""The Detector on real face videos with a real (untrained) model: statuses, shapes, determinism, and
scores recomputed independently (the head called directly on the same embeddings)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from deepfake_detect.evaluation.aggregation import aggregate
from deepfake_detect.faces import create_face_detector, crop_face
from deepfake_detect.inference import (
    ENGINES,
    DetectOptions,
    Detector,
    TorchEngine,
    VideoResult,
    bf16_supported,
    last_model_path,
    record_last_model,
)
from deepfake_detect.inference.analyze import EmbeddingStream, StageTimer, ThumbnailSampler, torch_threads
from deepfake_detect.inference.options import resolve
from deepfake_detect.inference.scoring import scoring_windows, similarity_matrix, timeline_windows
from deepfake_detect.models.io import load_model_dir, read_model_config, save_model_dir
from deepfake_detect.registry import UnknownNameError
from deepfake_detect.types import BBox, Detection, VideoStatus
from deepfake_detect.video import iter_frames

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def detector(detect_model_dir: Path) -> Detector:
    """fp32 so that the independent recomputation below matches to float precision."""
    return Detector.load(detect_model_dir, options=DetectOptions(precision="32", keep_embeddings=True))


@pytest.fixture(scope="module")
def face_result(detector: Detector, detect_media: dict[str, Path]) -> VideoResult:
    return detector.detect(detect_media["face"])


def _head_probs(model_dir: Path, embeddings: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """P(fake) of each span, one window at a time, straight from the saved head (no padding, no engine)."""
    head = load_model_dir(model_dir).head
    probs = []
    with torch.no_grad():
        for start, stop in spans:
            x = torch.from_numpy(embeddings[start:stop][None])  # (1, T, D)
            probs.append(torch.sigmoid(head(x, torch.tensor([stop - start]))).item())
    return np.array(probs)


# --- one real face video, end to end --------------------------------------------------------------------


def test_face_video_is_scored(face_result: VideoResult) -> None:
    result = face_result
    assert result.status is VideoStatus.OK and result.error is None
    assert result.fake_probability is not None and 0.0 <= result.fake_probability <= 1.0
    assert result.label == ("fake" if result.fake_probability >= 0.5 else "real")
    assert len(result.faces) == 1
    face = result.faces[0]
    assert (face.n_frames, face.first_frame, face.last_frame) == (28, 0, 27)
    assert face.start_s == 0.0 and face.end_s == pytest.approx(27 / 12)
    assert face.n_windows == 2  # 28 frames = one clip of 16 + a leftover of 12 >= min_clip_len 8
    assert set(result.timings) == {"decode", "detect", "crop", "embed", "head", "total"}
    assert all(v >= 0 for v in result.timings.values())
    assert result.timings["total"] >= sum(v for k, v in result.timings.items() if k != "total") * 0.99
    assert result.info["frames_used"] == 28 and result.info["stride"] == 1
    assert (result.info["width"], result.info["height"]) == (160, 160)


def test_probabilities_equal_the_head_on_the_same_embeddings(
    face_result: VideoResult, detect_model_dir: Path
) -> None:
    face = face_result.faces[0]
    assert face.embeddings is not None and face.embeddings.shape == (28, 32)
    assert face.frame_indices is not None and face.frame_indices.tolist() == list(range(28))
    windows = _head_probs(detect_model_dir, face.embeddings, [(0, 16), (16, 28)])
    assert face.fake_probability == pytest.approx(windows.mean(), abs=1e-6)
    assert face_result.fake_probability == pytest.approx(aggregate("mean", windows), abs=1e-6)
    # timeline: windows of 8 frames every 4 frames: starts 0, 4, ..., 20
    timeline = _head_probs(detect_model_dir, face.embeddings, [(s, s + 8) for s in range(0, 21, 4)])
    assert [p.fake_probability for p in face.timeline] == pytest.approx(timeline.tolist(), abs=1e-6)
    assert [p.start_s for p in face.timeline] == pytest.approx([s / 12 for s in range(0, 21, 4)])
    assert [p.end_s for p in face.timeline] == pytest.approx([(s + 7) / 12 for s in range(0, 21, 4)])


def test_embeddings_equal_the_extractor_on_independently_made_crops(
    detect_media: dict[str, Path], detect_model_dir: Path
) -> None:
    """Decode, detect and crop again by hand, embed with the saved extractor: the same vectors.

    With full keyframe scans (``tracked=False``; the default's guided scan is checked against per-frame
    MTCNN in test_faces_guided.py) detect runs MTCNN on every 4th frame and the last one (0, 4, ..., 24,
    27) and interpolates the box linearly in the frames between; done here by hand.
    """
    options = DetectOptions(precision="32", keep_embeddings=True, tracked=False)
    face_result = Detector.load(detect_model_dir, options=options).detect(detect_media["face"])
    loaded = load_model_dir(detect_model_dir)
    faces_config = loaded.config.face_config()
    face_detector = create_face_detector(faces_config)
    frames = [frame.image for frame in iter_frames(face_result.path)]
    keys = [*range(0, len(frames), 4), len(frames) - 1]
    found = {}
    for k in keys:
        (detection,) = face_detector.detect(frames[k])
        found[k] = np.array([detection.box.x1, detection.box.y1, detection.box.x2, detection.box.y2])
    crops = []
    for i, image in enumerate(frames):
        a = max(k for k in keys if k <= i)
        b = min(k for k in keys if k >= i)
        corners = found[a] if a == b else found[a] + (i - a) / (b - a) * (found[b] - found[a])
        box = BBox(*map(float, corners))
        crops.append(crop_face(image, box, faces_config.crop_size, faces_config.margin))
    with torch.no_grad():
        expected = loaded.extractor(loaded.extractor.prepare(np.stack(crops))).numpy()  # (28, D)
    np.testing.assert_allclose(face_result.faces[0].embeddings, expected, rtol=1e-4, atol=1e-5)


def test_similarity_matrix_is_the_cosine_of_the_embeddings(face_result: VideoResult) -> None:
    face = face_result.faces[0]
    assert face.similarity is not None and face.similarity_frames == list(range(28))
    unit = face.embeddings / np.linalg.norm(face.embeddings, axis=1, keepdims=True)  # type: ignore[operator]
    np.testing.assert_allclose(np.array(face.similarity), unit @ unit.T, atol=1e-4)


def test_detection_is_deterministic(detector: Detector, face_result: VideoResult) -> None:
    again = detector.detect(face_result.path)
    first, second = face_result.to_json(), again.to_json()
    first.pop("timings"), second.pop("timings")
    assert first == second


def test_json_is_serialisable_and_round_trips(face_result: VideoResult) -> None:
    data = json.loads(json.dumps(face_result.to_json()))
    assert data["status"] == "ok" and isinstance(data["faces"][0]["thumbnail_jpeg"], str)
    assert VideoResult.from_json(data).to_json() == data
    assert data["faces"][0]["timeline"][0].keys() == {"start_s", "end_s", "fake_probability"}


def test_thumbnails_are_small_jpegs(face_result: VideoResult) -> None:
    import cv2

    face = face_result.faces[0]
    assert face.thumbnail_jpeg is not None and face.thumbnails[0] == face.thumbnail_jpeg
    assert 1 < len(face.thumbnails) <= 6
    image = cv2.imdecode(np.frombuffer(face.thumbnail_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (96, 96, 3)


# --- short clips, several faces -----------------------------------------------------------------------


def test_two_second_clip_is_scored_with_an_adapted_stride(
    detect_model_dir: Path, detect_media: dict[str, Path], tmp_path: Path
) -> None:
    """The model keeps every 4th frame; 24 frames would give 6 < min_clip_len 8, so stride 3 is used."""
    loaded = load_model_dir(detect_model_dir)
    config = loaded.config
    clips = config.clip_config().model_copy(update={"frame_stride": 4})
    strided = save_model_dir(
        tmp_path / "stride4",
        loaded.extractor,
        loaded.head,
        head_name=config.head,
        head_kwargs=config.head_kwargs,
        threshold=0.5,
        faces=config.face_config(),
        clips=clips,
    )
    result = Detector.load(strided).detect(detect_media["two_seconds"])
    assert result.status is VideoStatus.OK, result.error
    assert (result.info["stride"], result.info["model_stride"], result.info["frames_used"]) == (3, 4, 8)
    assert result.faces[0].n_frames >= 8 and result.faces[0].last_frame == 21


def test_too_few_frames_is_too_short_not_a_probability(
    detector: Detector, detect_media: dict[str, Path]
) -> None:
    result = detector.detect(detect_media["short"])
    assert result.status is VideoStatus.TOO_SHORT
    assert result.fake_probability is None and result.label is None and result.faces == []
    assert result.error is not None and "longest run: 6 frames" in result.error
    assert result.info["tracks_seen"] == 1 and result.info["tracks_scored"] == 0


def test_max_frames_stops_early_with_a_warning(detect_model_dir: Path, detect_media: dict[str, Path]) -> None:
    result = Detector.load(detect_model_dir, options=DetectOptions(max_frames=10)).detect(
        detect_media["face"]
    )
    assert result.status is VideoStatus.OK and result.info["frames_used"] == 10
    assert result.info["max_frames_reached"] is True and result.faces[0].last_frame == 9
    assert result.warnings == ["only the first 10 frames of about 28 were examined (max_frames=10)"]


# --- pieces -------------------------------------------------------------------------------------------


def test_scoring_windows_follow_runs_and_leftovers() -> None:
    indices = [*range(0, 40, 2), *range(50, 60, 2), 70]  # runs (stride 2) of 20, 5 and 1 frames
    assert scoring_windows(indices, stride=2, clip_len=8, min_clip_len=4) == [
        (0, 8),
        (8, 16),
        (16, 20),
        (20, 25),
    ]
    assert scoring_windows(indices, stride=2, clip_len=8, min_clip_len=6) == [(0, 8), (8, 16)]
    assert scoring_windows(indices, stride=1, clip_len=8, min_clip_len=4) == []  # no two frames 1 apart
    assert timeline_windows(indices, stride=2, window=8, hop=5, min_len=4) == [
        (0, 8),
        (5, 13),
        (10, 18),
        (12, 20),
        (20, 25),
    ]


def test_similarity_matrix_subsamples_evenly() -> None:
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(200, 8)).astype(np.float32)
    positions, sim = similarity_matrix(embeddings, max_frames=64)
    assert positions[0] == 0 and positions[-1] == 199 and len(positions) == 64 and sim.shape == (64, 64)
    unit = embeddings[positions] / np.linalg.norm(embeddings[positions], axis=1, keepdims=True)
    np.testing.assert_allclose(sim, unit @ unit.T, atol=1e-6)


def test_face_detection_runs_with_its_own_thread_count() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    with torch_threads(None):
        assert torch.get_num_threads() == before
    assert torch.get_num_threads() == before


def test_thumbnail_sampler_keeps_few_evenly_spaced() -> None:
    sampler = ThumbnailSampler(count=6, size=16)
    crop = np.zeros((32, 32, 3), np.uint8)
    for position in range(100):
        sampler.add(position, crop)
        assert len(sampler.kept) <= 6
    # 7 crops at interval 16 (0 .. 96) are one too many: every other one goes, the interval becomes 32
    assert [p for p, _ in sampler.kept] == [0, 32, 64, 96]


def test_embedding_stream_holds_at_most_one_batch_of_crops(detect_model_dir: Path) -> None:
    engine = TorchEngine(load_model_dir(detect_model_dir), precision="32")
    settings = resolve(DetectOptions(batch_size=8, thumbnails_per_face=3), engine.config)
    batches: list[int] = []
    embed = engine.embed

    def counting_embed(frames: np.ndarray) -> np.ndarray:
        batches.append(len(frames))
        return embed(frames)

    engine.embed = counting_embed  # type: ignore[method-assign]
    stream = EmbeddingStream(engine, settings, StageTimer())
    rng = np.random.default_rng(0)
    for index in range(50):
        for track in (0, 1):
            crop = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            stream.add(_tracked(index, track, crop))
            assert len(stream._pending) < 8
    tracks = stream.finish()
    assert batches == [8] * 12 + [4]
    assert [t.embeddings.shape for t in tracks] == [(50, 32), (50, 32)]
    assert all(len(t.thumbnails) <= 3 for t in tracks)


def _tracked(index: int, track: int, crop: np.ndarray):  # type: ignore[no-untyped-def]
    from deepfake_detect.faces import TrackedFace

    return TrackedFace(index, index / 25, track, Detection(BBox(0, 0, 10, 10), 0.99), crop)


class _BatchRecorder:
    """The Detector's own face detector, recording the size of every batched call."""

    def __init__(self, detector: Any) -> None:
        self.name, self.detector, self.batches = detector.name, detector, []

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.batches.append(1)
        return self.detector.detect(image)

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        self.batches.append(len(images))
        return self.detector.detect_batch(images)


def test_detect_batch_reaches_the_face_detector(
    detect_model_dir: Path, detect_media: dict[str, Path], face_result: VideoResult
) -> None:
    """28 frames, detection in 0, 4, ..., 24 and the last (27): batches of 3 keyframes, then the rest."""
    detector = Detector.load(detect_model_dir, options=DetectOptions(detect_batch=3))
    recorder = _BatchRecorder(detector.face_detector)
    detector._face_detector = recorder  # the pipeline gets it through Detector.face_detector
    result = detector.detect(detect_media["face"])
    assert recorder.batches == [3, 3, 2]
    assert result.ok and [f.n_frames for f in result.faces] == [f.n_frames for f in face_result.faces]
    assert result.faces[0].fake_probability == pytest.approx(face_result.faces[0].fake_probability, abs=1e-4)


def test_options_resolve_against_the_model(detect_model_dir: Path) -> None:
    config = read_model_config(detect_model_dir)
    settings = resolve(DetectOptions(), config)
    assert (settings.threshold, settings.frame_stride, settings.clip_len, settings.min_clip_len) == (
        0.5,
        1,
        16,
        8,
    )
    assert (settings.aggregation, settings.timeline_window, settings.timeline_hop) == ("mean", 8, 4)
    custom = resolve(DetectOptions(threshold=0.3, face_detector="haar", detect_max_side=128), config)
    assert (custom.threshold, custom.faces.detector, custom.faces.detect_max_side) == (0.3, "haar", 128)
    assert settings.faces.detect_every == 4 and config.face_config().detect_every == 1  # inference's own
    assert resolve(DetectOptions(detect_every=1), config).faces.detect_every == 1
    assert settings.faces.detect_batch == 1  # on the CPU; 8 on a GPU
    assert resolve(DetectOptions(), config, "cuda").faces.detect_batch == 8
    assert resolve(DetectOptions(detect_batch=3), config, "cuda").faces.detect_batch == 3
    for bad in (
        DetectOptions(threshold=1.0),
        DetectOptions(precision="fp8"),
        DetectOptions(batch_size=0),
        DetectOptions(detect_every=0),
        DetectOptions(detect_batch=0),
    ):
        with pytest.raises(ValueError):
            resolve(bad, config)
    with pytest.raises(UnknownNameError, match="aggregation"):
        resolve(DetectOptions(aggregation="median"), config)


def test_the_models_detector_options_go_with_its_detector_only(detect_model_dir: Path) -> None:
    config = read_model_config(detect_model_dir)
    faces = {**config.faces, "detector": "haar", "detector_options": {"min_neighbors": 3}}
    config = config.model_copy(update={"faces": faces})
    assert resolve(DetectOptions(), config).faces.detector_options == {"min_neighbors": 3}
    assert resolve(DetectOptions(face_detector="haar"), config).faces.detector_options == {"min_neighbors": 3}
    other = resolve(DetectOptions(face_detector="mtcnn"), config).faces  # haar's options are not mtcnn's
    assert (other.detector, other.detector_options) == ("mtcnn", {})


def test_bf16_embeddings_are_close_to_fp32(detect_model_dir: Path) -> None:
    loaded = load_model_dir(detect_model_dir)
    fp32 = TorchEngine(loaded, precision="32", channels_last=False)
    bf16 = TorchEngine(load_model_dir(detect_model_dir), precision="bf16", channels_last=True)
    auto = TorchEngine(load_model_dir(detect_model_dir), precision="auto")
    assert auto.precision == ("bf16" if bf16_supported(torch.device("cpu")) else "32")
    crops = np.random.default_rng(1).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    a, b = fp32.embed(crops), bf16.embed(crops)
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == (5, 32)
    np.testing.assert_allclose(b, a, rtol=0.05, atol=0.05 * np.abs(a).max())


def _onnx_dir(model_dir: Path, tmp: Path) -> Path:
    from deepfake_detect.export import export_onnx

    return export_onnx(model_dir, tmp / "onnx")


# How to get a folder each engine can run from a model folder (a new engine must be added here).
ENGINE_DIRS: dict[str, Callable[[Path, Path], Path]] = {
    "torch": lambda model_dir, _: model_dir,
    "onnx": _onnx_dir,
}


def test_engine_registry() -> None:
    assert set(ENGINES.names()) == set(ENGINE_DIRS)
    with pytest.raises(UnknownNameError, match="inference engine"):
        ENGINES.get("tensorrt")


@pytest.mark.parametrize("engine", sorted(ENGINE_DIRS))
def test_every_engine_gives_the_same_verdict(
    engine: str, tmp_path: Path, detect_model_dir: Path, face_result: VideoResult
) -> None:
    model_dir = ENGINE_DIRS[engine](detect_model_dir, tmp_path)
    result = Detector.load(model_dir, engine=engine, options=DetectOptions(precision="32")).detect(
        face_result.path
    )
    assert result.status is VideoStatus.OK
    assert result.fake_probability == pytest.approx(face_result.fake_probability, abs=1e-4)
    expected = [p.fake_probability for p in face_result.faces[0].timeline]
    assert [p.fake_probability for p in result.faces[0].timeline] == pytest.approx(expected, abs=1e-4)


def test_model_info_describes_model_and_settings(detector: Detector, detect_model_dir: Path) -> None:
    info = detector.model_info()
    assert info["path"] == str(detect_model_dir) and info["engine"] == "torch" and info["precision"] == "32"
    assert (info["backbone"], info["head"], info["embed_dim"], info["threshold"]) == ("cnn4", "lstm", 32, 0.5)
    json.dumps(info)


def test_last_model_pointer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, detect_model_dir: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert last_model_path() is None
    pointer = record_last_model(detect_model_dir)
    assert pointer == tmp_path / "cache" / "deepfake-detect" / "last-model"
    assert last_model_path() == detect_model_dir.resolve()
    pointer.write_text(str(tmp_path / "gone") + "\n")
    assert last_model_path() is None


def test_results_never_carry_a_made_up_probability() -> None:
    with pytest.raises(ValueError, match="no probability"):
        VideoResult("x.mp4", VideoStatus.NO_FACE, fake_probability=0.5)
    with pytest.raises(ValueError, match="finite"):
        VideoResult("x.mp4", VideoStatus.OK)


@pytest.mark.slow
def test_memory_does_not_grow_with_video_length(
    tmp_path: Path, detect_model_dir: Path, astronaut_rgb: np.ndarray, face_clip_writer: Callable[..., Path]
) -> None:
    """Peak Python heap (frames are numpy arrays) for 150 frames stays near that of 30 frames: nothing but
    embeddings (150 x 32 floats here) and a few thumbnails is kept."""
    import tracemalloc

    lossless = {"codec": "ffv1", "pix_fmt": "yuv444p", "side": 192}
    short = face_clip_writer(tmp_path / "short.mkv", [astronaut_rgb], frames=30, **lossless)
    long = face_clip_writer(tmp_path / "long.mkv", [astronaut_rgb], frames=150, **lossless)
    detector = Detector.load(detect_model_dir, options=DetectOptions(face_detector="haar", max_frames=None))
    detector.warm_up()
    peaks = []
    for path in (short, long):
        tracemalloc.start()
        try:
            result = detector.detect(path)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert result.status is VideoStatus.OK
    frame_bytes = 192 * 192 * 3
    assert result.faces[0].n_frames == 150
    assert peaks[1] < peaks[0] + 20 * frame_bytes, f"peaks {peaks}: 120 more frames (13 MB) were buffered?"
