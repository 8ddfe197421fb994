"""A corpus of bad and odd files: each gets the right status and an error sentence, never a traceback or a
hang, and in a batch the other files are still scored (also when a worker process crashes)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
UNSUPPORTED = VideoStatus.UNSUPPORTED_FORMAT
SPACED_NAME = "face with spaces ü é.mp4"  # spaces and non-ASCII characters

# name -> (expected status, a word the error sentence must contain, or None for ok)
EXPECTED: dict[str, tuple[VideoStatus, str | None]] = {
    "truncated.mp4": (UNDECODABLE, "cannot read"),
    "interrupted.mp4": (OK, None),  # index at the front, cut at 60 %: the frames before the cut are used
    "truncated.mkv": (OK, None),
    "empty.mp4": (UNDECODABLE, "empty"),
    "random.mp4": (UNDECODABLE, "cannot read"),
    "image.mp4": (UNSUPPORTED, "still image"),
    "playlist.m3u8": (UNSUPPORTED, "an HLS playlist, not a video file"),  # points at face.mkv
    "list.ffconcat": (UNSUPPORTED, "an ffconcat list, not a video file"),  # points at face.mkv
    "garbage.bin": (UNSUPPORTED, "container format"),  # FFmpeg's "bin" (BinText) demuxer takes any bytes
    "zero_frames.avi": (UNDECODABLE, "no decodable frames"),
    "no_tracks.mp4": (NO_STREAM, "no streams at all"),  # an MP4 whose only track is empty
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
    "hevc10.mkv": (OK, None),  # HEVC Main 10: 16-bit planes
    SPACED_NAME: (OK, None),
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


def _empty_video(path: Path, format: str, codec: str) -> Path:
    """A container with a video stream (header written) and not one frame."""
    with av.open(str(path), mode="w", format=format) as container:
        stream = container.add_stream(codec, rate=12)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        container.start_encoding()
    return path


def _interrupted_download(path: Path, astronaut: np.ndarray) -> Path:
    """An MP4 with its index at the front ("faststart"), cut at 60 % like an interrupted download."""
    import cv2

    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width = stream.height = 160
        stream.pix_fmt = "yuv420p"
        for i in range(36):
            image = np.ascontiguousarray(cv2.resize(astronaut[10 + i : 450 + i, 40:480], (160, 160)))
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # the index really is in front of the frames
    return _truncate(path, 0.6)


def _references(root: Path, target: Path) -> dict[str, Path]:
    """An HLS playlist and an ffconcat list that point at ``target`` (followed, they would read it)."""
    playlist, concat = root / "playlist.m3u8", root / "list.ffconcat"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n{target}\n#EXT-X-ENDLIST\n")
    concat.write_text(f"ffconcat version 1.0\nfile '{target}'\n")
    return {"playlist.m3u8": playlist, "list.ffconcat": concat}


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
        "hevc10.mkv": write_face_clip(root / "hevc10.mkv", face, codec="libx265", pix_fmt="yuv420p10le"),
        "face.webm": write_face_clip(root / "face.webm", face, codec="libvpx-vp9"),
        SPACED_NAME: write_face_clip(root / SPACED_NAME, face),
        "interrupted.mp4": _interrupted_download(root / "interrupted.mp4", astronaut),
        "zero_frames.avi": _empty_video(root / "zero_frames.avi", "avi", "mpeg4"),
        "no_tracks.mp4": _empty_video(root / "no_tracks.mp4", "mp4", "libx264"),
    }
    files.update(_references(root, files["face.mkv"]))
    (root / "garbage.bin").write_bytes(b"\x00garbage" * 500)
    (root / "empty.mp4").write_bytes(b"")
    (root / "random.mp4").write_bytes(rng.bytes(5000))
    (root / "notes.mp4").write_text("not a video\n" * 50)
    imsave(root / "image.png", astronaut[:128, :128])
    (root / "image.png").rename(root / "image.mp4")
    write_video(root / "noise.mp4", [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(12)])
    write_video(root / "tiny.mp4", [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3)])
    for name in ("empty.mp4", "random.mp4", "notes.mp4", "image.mp4", "noise.mp4", "tiny.mp4", "garbage.bin"):
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
    named = [str(corpus[name]) for name in ("playlist.m3u8", "list.ffconcat", "garbage.bin", "missing.mp4")]
    args = ["detect", str(folder), *named, "--model", str(detect_model_dir)]  # the folder: video suffixes
    result = CliRunner().invoke(app, [*args, "--json", str(out), "--threads", "1", "--timeout", "300"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    videos = {Path(v["path"]).name: v for v in json.loads(out.read_text())["videos"]}
    assert videos.keys() == corpus.keys()
    for name, video in videos.items():
        check_result(name, VideoResult.from_json(video))


# --- references in playlists are never followed --------------------------------------------------------


class _Watch:
    """A fifo and a loopback port that record whether anything opened them while the ``with`` ran."""

    def __init__(self, root: Path) -> None:
        import socket

        self.fifo = root / "watched.fifo"
        os.mkfifo(self.fifo)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/video.mp4"
        self.fifo_opened = False

    def __enter__(self) -> _Watch:
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():  # a writer can open a fifo only once a reader has it open
            try:
                os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))
                self.fifo_opened = True
            except OSError:
                pass
            self._stop.wait(0.01)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.server.setblocking(False)
        try:
            self.server.accept()[0].close()
            self.connected = True
        except BlockingIOError:
            self.connected = False
        self.server.close()


@pytest.mark.parametrize("kind", ["playlist.m3u8", "list.ffconcat"])
def test_a_playlist_is_refused_without_opening_what_it_names(
    tmp_path: Path, detector: Detector, kind: str
) -> None:
    watch = _Watch(tmp_path)
    if kind == "playlist.m3u8":
        text = f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n{watch.fifo}\n#EXTINF:1.0,\n{watch.url}\n"
    else:
        text = f"ffconcat version 1.0\nfile '{watch.fifo}'\nfile '{watch.url}'\n"
    (tmp_path / kind).write_text(text + "#EXT-X-ENDLIST\n" * (kind == "playlist.m3u8"))
    with watch:
        result = detector.detect(tmp_path / kind)
    check_result(kind, result)
    assert not watch.fifo_opened and not watch.connected  # neither the local file nor the URL was read


# --- the service gives the same answers as detect ------------------------------------------------------


@pytest.fixture(scope="module")
def service(detect_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    from fastapi.testclient import TestClient

    from deepfake_detect.service import ServiceSettings, create_app

    uploads = tmp_path_factory.mktemp("parity-uploads")
    settings = ServiceSettings(workers=1, queue_size=0, upload_dir=uploads, worker_threads=1)
    with TestClient(create_app(detect_model_dir, settings)) as client:
        yield client, uploads


def test_the_service_gives_every_bad_input_the_status_detect_gives(
    corpus: dict[str, Path], results: dict[str, VideoResult], service: tuple[Any, Path]
) -> None:
    client, uploads = service
    for name, path in corpus.items():
        if not path.exists():
            continue  # missing.mp4: nothing to upload
        response = client.post("/v1/detect", files={"file": (name, path.read_bytes(), "video/mp4")})
        body = response.json()
        video = body["videos"][0] if response.status_code == 200 else body
        assert video["status"] == results[name].status.value, (name, body)
        assert (response.status_code == 200) == (results[name].status in (OK, NO_FACE, TOO_SHORT)), name
        assert str(uploads) not in response.text and "upload-" not in response.text, name  # no server paths
        text = video.get("error") if response.status_code == 200 else video["detail"]
        if results[name].error is not None:
            assert text is not None and text.startswith(f"{name}: "), (name, text)  # only the client's name
        if response.status_code == 200:
            assert video["path"] == name
            assert video["fake_probability"] == pytest.approx(results[name].fake_probability, abs=1e-4)
