"""A corpus of bad and odd files: each gets the right status and an error sentence, never a traceback or a
hang, and in a batch the other files are still scored (also when a worker process crashes)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from skimage.io import imsave

from deepfake_detect.inference import DetectOptions, Detector, VideoResult, detect_in_worker
from deepfake_detect.types import VideoStatus
from deepfake_detect.video import write_video

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OK, NO_FACE, TOO_SHORT = VideoStatus.OK, VideoStatus.NO_FACE, VideoStatus.TOO_SHORT
UNDECODABLE, NO_STREAM, NOT_FOUND = (
    VideoStatus.UNDECODABLE,
    VideoStatus.NO_VIDEO_STREAM,
    VideoStatus.NOT_FOUND,
)

# name -> (expected status, a word the error sentence must contain, or None for ok)
EXPECTED: dict[str, tuple[VideoStatus, str | None]] = {
    "truncated.mp4": (UNDECODABLE, "cannot read"),
    "truncated.mkv": (OK, None),
    "empty.mp4": (UNDECODABLE, "empty"),
    "random.mp4": (UNDECODABLE, "cannot read"),
    "image.mp4": (UNDECODABLE, "still image"),
    "notes.mp4": (UNDECODABLE, "cannot read"),
    "audio.mp4": (NO_STREAM, "no video stream"),
    "noise.mp4": (NO_FACE, "No face"),
    "tiny.mp4": (NO_FACE, "No face"),
    "rotated.mp4": (OK, None),
    "vfr.mkv": (OK, None),
    "many_faces.mp4": (OK, None),
    "face.webm": (OK, None),
    "face.avi": (OK, None),
    "face.mkv": (OK, None),
    "missing.mp4": (NOT_FOUND, "no such file"),
}
VFR_MS = [0, 40, 120, 130, 200, 330, 400, 410, 500, 600, 640, 700]


def _audio_only(path: Path) -> Path:
    rate = 16000
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(tone[None], format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


def _truncate(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def build_corpus(
    root: Path, astronaut: np.ndarray, camera: np.ndarray, write_face_clip: Callable[..., Path]
) -> dict[str, Path]:
    """Every file of :data:`EXPECTED` (missing.mp4 is not created)."""
    rng = np.random.default_rng(0)
    face = [astronaut]
    lossless = {"codec": "ffv1", "pix_fmt": "yuv444p"}
    files = {
        "truncated.mp4": _truncate(write_face_clip(root / "truncated.mp4", face), 0.5),  # index at the end
        "truncated.mkv": _truncate(write_face_clip(root / "truncated.mkv", face, frames=24, **lossless), 0.6),
        "audio.mp4": _audio_only(root / "audio.mp4"),
        "rotated.mp4": write_face_clip(root / "rotated.mp4", face, rotation=-90),
        "vfr.mkv": write_face_clip(root / "vfr.mkv", face, pts_ms=VFR_MS, **lossless),
        "many_faces.mp4": write_face_clip(root / "many_faces.mp4", [astronaut, camera], side=192),
        "face.avi": write_face_clip(root / "face.avi", face, codec="mpeg4"),
        "face.mkv": write_face_clip(root / "face.mkv", face, **lossless),
    }
    if "libvpx-vp9" in av.codecs_available:
        files["face.webm"] = write_face_clip(root / "face.webm", face, codec="libvpx-vp9")
    (root / "empty.mp4").write_bytes(b"")
    (root / "random.mp4").write_bytes(rng.bytes(5000))
    (root / "notes.mp4").write_text("not a video\n" * 50)
    imsave(root / "image.png", astronaut[:128, :128])
    (root / "image.png").rename(root / "image.mp4")
    write_video(root / "noise.mp4", [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(12)])
    write_video(root / "tiny.mp4", [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3)])
    for name in ("empty.mp4", "random.mp4", "notes.mp4", "image.mp4", "noise.mp4", "tiny.mp4"):
        files[name] = root / name
    files["missing.mp4"] = root / "missing.mp4"
    return files


@pytest.fixture(scope="module")
def corpus(
    tmp_path_factory: pytest.TempPathFactory,
    astronaut_rgb: np.ndarray,
    camera_rgb: np.ndarray,
    face_clip_writer: Callable[..., Path],
) -> dict[str, Path]:
    return build_corpus(tmp_path_factory.mktemp("corpus"), astronaut_rgb, camera_rgb, face_clip_writer)


@pytest.fixture(scope="module")
def detector(detect_model_dir: Path) -> Detector:
    return Detector.load(detect_model_dir)


@pytest.fixture(scope="module")
def results(corpus: dict[str, Path], detector: Detector) -> dict[str, VideoResult]:
    """Every corpus file detected once, in this process."""
    return {name: detector.detect(path) for name, path in corpus.items()}


def check_result(name: str, result: VideoResult) -> None:
    """The status of :data:`EXPECTED`; an error sentence exactly when not ok, a probability when ok."""
    status, word = EXPECTED[name]
    assert result.status is status, f"{name}: {result.status} ({result.error})"
    if status is OK:
        assert result.error is None and result.fake_probability is not None and result.faces
        assert result.label in ("fake", "real")
    else:
        assert result.fake_probability is None and result.label is None and not result.faces
        assert word is not None and result.error is not None and word.lower() in result.error.lower()
        assert result.error.endswith(".") and "Traceback" not in result.error


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_file_gets_its_status(name: str, results: dict[str, VideoResult]) -> None:
    if name not in results:
        pytest.skip("this FFmpeg build has no VP9 encoder")
    check_result(name, results[name])


def test_odd_but_valid_files_are_read_correctly(results: dict[str, VideoResult]) -> None:
    rotated = results["rotated.mp4"]
    assert rotated.info["rotation"] == 270 and rotated.faces[0].n_frames == 12  # upright: MTCNN finds it
    vfr = results["vfr.mkv"]
    assert vfr.faces[0].end_s == pytest.approx(0.7) and vfr.faces[0].timeline[-1].end_s == pytest.approx(0.7)
    truncated = results["truncated.mkv"]
    assert 8 <= truncated.info["frames_used"] < 24
    many = results["many_faces.mp4"]
    assert len(many.faces) == 2 and {f.n_frames for f in many.faces} == {12}
    probs = [face.fake_probability for face in many.faces]
    assert many.fake_probability == pytest.approx(np.mean(probs), abs=1e-9)  # one window per face


def test_a_folder_named_like_a_video_is_undecodable(tmp_path: Path, detector: Detector) -> None:
    (tmp_path / "folder.mp4").mkdir()
    result = detector.detect(tmp_path / "folder.mp4")
    assert result.status is UNDECODABLE and result.error is not None and "directory" in result.error


def test_frames_above_the_pixel_limit_are_too_large(corpus: dict[str, Path], detect_model_dir: Path) -> None:
    small = Detector.load(detect_model_dir, options=DetectOptions(max_pixels=100 * 100))
    result = small.detect(corpus["face.mkv"])
    assert (
        result.status is VideoStatus.TOO_LARGE and result.error is not None and "max_pixels" in result.error
    )
    short = Detector.load(detect_model_dir, options=DetectOptions(max_duration_s=0.5))
    assert short.detect(corpus["face.mkv"]).status is VideoStatus.TOO_LARGE  # 12 frames at 12 fps = 1 s


# --- in worker processes ------------------------------------------------------------------------------


def crash_on_marked_files(path: str) -> VideoResult:
    """Worker task: a real segfault of the worker process for files named crash*, else the real detect."""
    if Path(path).name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGSEGV)
    return detect_in_worker(path)


def hang_on_marked_files(path: str) -> VideoResult:
    import time

    if Path(path).name.startswith("hang"):
        time.sleep(600)
    return detect_in_worker(path)


def _run_batch(
    detector: Detector, paths: list[Path], task: Callable[[str], VideoResult], **kwargs: float
) -> dict[str, VideoResult]:
    results = detector.detect_many(paths, workers=1, threads=1, task=task, **kwargs)  # type: ignore[arg-type]
    return {Path(r.path).name: r for r in results}


def test_a_worker_crash_costs_only_its_file(
    tmp_path: Path, corpus: dict[str, Path], detector: Detector, results: dict[str, VideoResult]
) -> None:
    crash = tmp_path / "crash.mkv"
    crash.write_bytes(corpus["face.mkv"].read_bytes())
    paths = [corpus["face.avi"], crash, corpus["empty.mp4"], corpus["missing.mp4"], corpus["face.mkv"]]
    batch = _run_batch(detector, paths, crash_on_marked_files, timeout_s=300)
    assert batch.keys() == {"face.avi", "crash.mkv", "empty.mp4", "missing.mp4", "face.mkv"}
    crashed = batch["crash.mkv"]
    assert crashed.status is UNDECODABLE and crashed.error is not None and "SIGSEGV" in crashed.error
    for name in ("face.avi", "empty.mp4", "missing.mp4", "face.mkv"):
        check_result(name, batch[name])
    in_process = results["face.mkv"].fake_probability  # the same model in this process: the same answer
    assert batch["face.mkv"].fake_probability == pytest.approx(in_process, abs=1e-6)


@pytest.mark.slow
def test_a_hanging_file_is_stopped_and_the_batch_goes_on(
    tmp_path: Path, corpus: dict[str, Path], detector: Detector
) -> None:
    hang = tmp_path / "hang.mp4"
    hang.write_bytes(corpus["face.avi"].read_bytes())
    results = _run_batch(detector, [hang, corpus["face.avi"]], hang_on_marked_files, timeout_s=15)
    assert results["hang.mp4"].status is VideoStatus.TOO_LARGE and "15 s" in (results["hang.mp4"].error or "")
    check_result("face.avi", results["face.avi"])


@pytest.mark.slow
def test_the_whole_corpus_through_the_command_line(
    corpus: dict[str, Path], detect_model_dir: Path, tmp_path: Path
) -> None:
    """Every file in worker processes via ``deepfake-detect detect FOLDER``: right statuses, exit code 1."""
    import json

    from typer.testing import CliRunner

    from deepfake_detect.cli.app import _load_commands, app

    _load_commands()
    folder = corpus["face.mkv"].parent
    out = tmp_path / "out.json"
    args = ["detect", str(folder), str(folder / "missing.mp4"), "--model", str(detect_model_dir)]
    result = CliRunner().invoke(app, [*args, "--json", str(out), "--threads", "1", "--timeout", "300"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    videos = {Path(v["path"]).name: v for v in json.loads(out.read_text())["videos"]}
    assert videos.keys() == corpus.keys()
    for name, video in videos.items():
        check_result(name, VideoResult.from_json(video))
