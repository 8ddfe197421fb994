"""The HTTP service (issue 4): verdicts, upload limits, garbage, queueing, timeouts, memory, clean-up.

A real tiny model (``detect_model_dir``) and real videos made with PyAV; the app runs in-process under
starlette's TestClient (workers are real processes) and, for the socket-level checks, under uvicorn in a
subprocess (``live_server`` in conftest.py).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import select
import socket
import threading
import time
import wave
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from deepfake_detect.service import ServiceSettings, create_app
from deepfake_detect.video import write_video

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import LiveServer

LIMIT_MB = 1
MAX_DURATION_S = 5.0
MAX_PIXELS = 320 * 240


@pytest.fixture(scope="module")
def uploads_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-uploads")


@pytest.fixture(scope="module")
def client(detect_model_dir: Path, uploads_root: Path) -> Iterator[TestClient]:
    """One worker, queue of one (capacity 2), uploads up to 1 MB, videos up to 5 s and 320x240."""
    settings = ServiceSettings(
        workers=1,
        queue_size=1,
        max_upload_mb=LIMIT_MB,
        max_duration_s=MAX_DURATION_S,
        max_pixels=MAX_PIXELS,
        upload_dir=uploads_root,
        worker_threads=1,  # one torch thread: several threads crawl on a busy 2-core machine
    )
    with TestClient(create_app(detect_model_dir, settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def face_video(detect_media: dict[str, Path]) -> Path:
    """2 s (24 frames at 12 fps) of the astronaut's face in H.264 (shared with the detect tests)."""
    return detect_media["two_seconds"]


def spooled(root: Path) -> list[Path]:
    """Every file the service left in its upload folder(s) under ``root``."""
    return [path for path in root.rglob("*") if path.is_file()]


def wait_until_empty(root: Path, timeout_s: float = 10.0) -> list[Path]:
    deadline = time.monotonic() + timeout_s
    while (left := spooled(root)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def post_video(client: TestClient | httpx.Client, path: Path, name: str | None = None) -> Any:
    files = {"file": (name or path.name, path.read_bytes(), "video/mp4")}
    return client.post("/v1/detect", files=files)


# --- health, model, page -----------------------------------------------------------------------------


def test_health_reports_workers_load_and_limits(client: TestClient) -> None:
    response = client.get("/v1/health")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok"
    assert (health["workers"], health["capacity"], health["admitted"], health["running"]) == (1, 2, 0, 0)
    assert health["limits"]["max_upload_mb"] == LIMIT_MB
    assert health["limits"]["max_upload_bytes"] == LIMIT_MB * 2**20
    assert health["limits"]["max_duration_s"] == MAX_DURATION_S
    assert health["limits"]["max_pixels"] == MAX_PIXELS


def test_model_endpoint_is_the_detectors_model_info(client: TestClient, detect_model_dir: Path) -> None:
    from deepfake_detect.inference import Detector

    reference = json.loads(json.dumps(Detector.load(detect_model_dir).model_info()))
    response = client.get("/v1/model")
    assert response.status_code == 200
    assert response.json() == reference
    config = json.loads((detect_model_dir / "config.json").read_text())
    assert config["backbone"] in json.dumps(reference) and config["head"] in json.dumps(reference)


def test_page_docs_and_openapi(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert client.get(asset).status_code == 200, asset
    assert "/static/app.js" in page.text and "/static/app.css" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # works without any network
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    upload = spec["paths"]["/v1/detect"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert {"200", "413", "422", "503", "504"} <= set(upload["responses"])
    assert {"/v1/health", "/v1/model"} <= set(spec["paths"])


def _schema(spec: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    """The component a ``{"$ref": "#/components/schemas/NAME"}`` points to."""
    schema: dict[str, Any] = spec["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]
    return schema


def test_openapi_describes_the_detect_answer_and_the_model(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    ok = spec["paths"]["/v1/detect"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    body = _schema(spec, ok)
    assert set(body["properties"]) == {"videos", "model"} and set(body["required"]) == {"videos", "model"}
    video = _schema(spec, body["properties"]["videos"]["items"])
    main = {"path", "status", "fake_probability", "label", "threshold", "error", "warnings", "faces"}
    assert main | {"timings", "info"} <= set(video["properties"]) and main <= set(video["required"])
    assert set(_schema(spec, video["properties"]["status"])["enum"]) >= {"ok", "no_face", "too_large"}
    face = _schema(spec, video["properties"]["faces"]["items"])
    assert {"track_id", "fake_probability", "timeline", "similarity", "thumbnail_jpeg"} <= set(
        face["required"]
    )
    model = spec["paths"]["/v1/model"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    kinds = {_schema(spec, ref)["properties"]["kind"]["const"] for ref in model["oneOf"]}
    assert kinds == {"sequence", "frame"}
    assert {"backbone", "threshold", "card"} <= set(
        spec["components"]["schemas"]["SequenceModelBody"]["required"]
    )


# --- verdicts ----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("one_torch_thread")  # as in the worker
def test_detect_returns_the_same_verdict_as_the_detector_in_process(
    client: TestClient, face_video: Path, detect_model_dir: Path, uploads_root: Path
) -> None:
    from deepfake_detect.inference import DetectOptions, Detector

    response = post_video(client, face_video, name="../secret/astronaut.mp4")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"videos", "model"} and len(body["videos"]) == 1
    assert body["model"] == client.get("/v1/model").json()
    video = body["videos"][0]
    assert video["status"] == "ok" and video["path"] == "astronaut.mp4"  # the client's name, no folders
    assert 0.0 <= video["fake_probability"] <= 1.0
    assert video["label"] == ("fake" if video["fake_probability"] >= video["threshold"] else "real")
    face = video["faces"][0]
    assert face["timeline"] and all(0.0 <= p["fake_probability"] <= 1.0 for p in face["timeline"])
    similarity = np.asarray(face["similarity"])
    assert similarity.ndim == 2 and similarity.shape[0] == similarity.shape[1] >= 8
    np.testing.assert_allclose(
        np.diag(similarity), 1.0, atol=1e-3
    )  # cosine similarity of a frame with itself
    assert base64.b64decode(face["thumbnail_jpeg"])[:2] == b"\xff\xd8"  # a JPEG

    options = DetectOptions(keep_similarity=True, keep_thumbnails=True)
    reference = Detector.load(detect_model_dir, options=options).detect(face_video)
    assert reference.status.value == "ok"
    assert video["fake_probability"] == pytest.approx(reference.fake_probability, abs=1e-4)
    assert len(video["faces"]) == len(reference.faces)
    assert wait_until_empty(uploads_root) == []


def test_raw_body_upload_is_accepted(client: TestClient, face_video: Path, uploads_root: Path) -> None:
    headers = {"content-type": "application/octet-stream"}
    response = client.post("/v1/detect", content=face_video.read_bytes(), headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["videos"][0]["status"] == "ok"
    assert wait_until_empty(uploads_root) == []


# --- limits ------------------------------------------------------------------------------------------


def _multipart_chunks(size: int, boundary: str = "b0undary", chunk: int = 1 << 16) -> Iterator[bytes]:
    """A valid multipart body whose file part holds ``size`` random bytes, in ``chunk``-byte pieces."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    rng = np.random.default_rng(1)
    for start in range(0, size, chunk):
        yield rng.integers(0, 256, min(chunk, size - start), dtype=np.uint8).tobytes()
    yield f"\r\n--{boundary}--\r\n".encode()


@pytest.mark.parametrize("framing", ["content-length", "chunked", "lying-content-length"])
def test_oversize_upload_gets_413(client: TestClient, uploads_root: Path, framing: str) -> None:
    size = 2 * LIMIT_MB * 2**20
    headers = {"content-type": "multipart/form-data; boundary=b0undary"}
    body: bytes | Iterator[bytes] = b"".join(_multipart_chunks(size))
    if framing == "chunked":  # no Content-Length: the limit can only be enforced while reading
        body = _multipart_chunks(size)
    elif framing == "lying-content-length":  # claims 1000 bytes, sends 2 MB
        headers["content-length"] = "1000"
    response = client.post("/v1/detect", content=body, headers=headers)
    assert response.status_code == 413, response.text
    assert response.json()["status"] == "too_large"
    assert f"{LIMIT_MB:g} MB" in response.json()["detail"]
    assert spooled(uploads_root) == []


def _wav_bytes() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        tone = (8000 * np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000)).astype("<i2")
        audio.writeframes(tone.tobytes())
    return buffer.getvalue()


def _png_bytes(image: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", image[:, :, ::-1])
    assert ok
    return bytes(data.tobytes())


def _video_bytes(tmp: Path, name: str, frames: int, size: tuple[int, int], fps: float) -> bytes:
    path = tmp / name
    write_video(path, (np.full((size[1], size[0], 3), 90, np.uint8) for _ in range(frames)), fps=fps)
    return path.read_bytes()


def _garbage(kind: str, tmp: Path, astronaut: np.ndarray, face_video: Path) -> tuple[str, bytes]:
    if kind == "random-bytes":
        return "noise.mp4", np.random.default_rng(2).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    if kind == "empty":
        return "empty.mp4", b""
    if kind == "audio-only":
        return "tone.wav", _wav_bytes()
    if kind == "still-image":
        return "astronaut.png", _png_bytes(astronaut)
    if kind == "hls-playlist":  # names a real video: followed, it would be analysed
        return "clip.m3u8", f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{face_video}\n".encode()
    if kind == "ffconcat":
        return "clip.ffconcat", f"ffconcat version 1.0\nfile '{face_video}'\n".encode()
    if kind == "bintext-bytes":  # what FFmpeg's "bin" demuxer read as a 640x400 "video" when spooled as .bin
        return "garbage", b"\x00garbage" * 500
    if kind == "truncated-mp4":
        data = face_video.read_bytes()
        return "cut.mp4", data[: len(data) // 2]
    if kind == "too-many-pixels":
        return "wide.mp4", _video_bytes(tmp, "wide.mp4", 4, (400, 300), 10.0)
    return "long.mp4", _video_bytes(tmp, "long.mp4", 14, (64, 64), 2.0)  # 7 s > 5 s


GARBAGE = [
    ("random-bytes", "undecodable", "media file"),
    ("empty", "undecodable", "empty"),
    ("audio-only", "unsupported_format", "is a WAV audio file, not a video file"),
    ("still-image", "unsupported_format", "is a still image (PNG), not a video file"),
    ("hls-playlist", "unsupported_format", "is an HLS playlist, not a video file"),
    ("ffconcat", "unsupported_format", "is an ffconcat list, not a video file"),
    ("bintext-bytes", "undecodable", "FFmpeg cannot read it as a media file"),
    ("truncated-mp4", "undecodable", "FFmpeg cannot read it as a media file"),
    ("too-many-pixels", "too_large", "pixels"),
    ("too-long", "too_large", "lasts 7.0 s"),
]


@pytest.mark.parametrize(("kind", "status", "reason"), GARBAGE, ids=[g[0] for g in GARBAGE])
def test_unusable_upload_gets_422_with_the_reason(
    client: TestClient,
    uploads_root: Path,
    tmp_path: Path,
    astronaut_rgb: np.ndarray,
    face_video: Path,
    kind: str,
    status: str,
    reason: str,
) -> None:
    name, data = _garbage(kind, tmp_path, astronaut_rgb, face_video)
    response = client.post("/v1/detect", files={"file": (name, data, "application/octet-stream")})
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["status"] == status
    assert reason in error["detail"] and name in error["detail"], error
    assert str(uploads_root) not in error["detail"]  # the server's paths stay private
    assert wait_until_empty(uploads_root) == []


@pytest.mark.parametrize("form", ["multipart", "urlencoded"])
def test_form_without_a_file_gets_422(client: TestClient, uploads_root: Path, form: str) -> None:
    if form == "multipart":
        response = client.post("/v1/detect", files={"note": (None, "no video here")})
    else:
        response = client.post("/v1/detect", data={"note": "no video here"})
    assert response.status_code == 422
    error = response.json()
    assert error["status"] == "bad_upload" and "form field 'file'" in error["detail"]
    assert spooled(uploads_root) == []


# --- concurrency -------------------------------------------------------------------------------------


def _post_concurrently(post: Any, count: int) -> list[Any]:
    """``count`` calls of ``post()`` released at once from threads; their responses (httpx or httpx2)."""
    responses: list[Any] = [RuntimeError("no answer")] * count
    start = threading.Barrier(count)

    def run(index: int) -> None:
        start.wait()
        try:
            responses[index] = post()
        except BaseException as exc:  # recorded and reported below
            responses[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    failures = [repr(r) for r in responses if isinstance(r, BaseException)]
    assert failures == []
    return responses


def test_a_full_queue_answers_503_with_retry_after(
    client: TestClient, face_video: Path, uploads_root: Path
) -> None:
    data = face_video.read_bytes()
    responses = _post_concurrently(
        lambda: client.post("/v1/detect", files={"file": ("a.mp4", data, "video/mp4")}), 8
    )
    codes = Counter(r.status_code for r in responses)
    assert set(codes) == {200, 503}, codes  # every request answered: verdicts while there is room
    # the 8 small uploads arrive within milliseconds, a verdict takes about a second: only the
    # capacity (1 running + 1 queued) can be admitted
    assert codes[200] <= 2, codes
    for response in responses:
        if response.status_code == 503:
            assert response.json()["status"] == "busy"
            assert int(response.headers["retry-after"]) >= 1
        else:
            assert response.json()["videos"][0]["status"] == "ok"
    assert client.get("/v1/health").json()["admitted"] == 0
    assert wait_until_empty(uploads_root) == []


def crash_like_a_decoder(path: str) -> None:
    """Stands in for ``detect_in_worker`` in the worker: dies the way a crashing native decoder does."""
    os.abort()


@pytest.mark.slow  # a replacement worker loads the model again (~5-10 s)
def test_a_crashing_worker_costs_one_request_not_the_server(
    client: TestClient, face_video: Path, uploads_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import deepfake_detect.service.workers as workers

    with monkeypatch.context() as patch:
        patch.setattr(workers, "detect_in_worker", crash_like_a_decoder)  # sent to the worker by reference
        response = post_video(client, face_video)
    assert response.status_code == 422, response.text
    assert response.json()["status"] == "undecodable"
    assert "crashed" in response.json()["detail"] and "SIGABRT" in response.json()["detail"]
    assert wait_until_empty(uploads_root) == []
    again = client.post("/v1/detect", files={"file": ("x.mp4", b"not a video", "video/mp4")})
    assert again.status_code == 422 and "FFmpeg" in again.json()["detail"]  # a fresh worker answered


# --- timeout -----------------------------------------------------------------------------------------


def test_a_slow_video_gets_504_and_its_file_is_removed(
    detect_model_dir: Path, tmp_path: Path, astronaut_rgb: np.ndarray, face_clip_writer: Callable[..., Path]
) -> None:
    # 150 frames at 320 px: seconds of work (the 2-s clip alone took 0.2 s, inside the 0.3 s limit)
    long_video = face_clip_writer(tmp_path / "long.mp4", [astronaut_rgb], frames=150, side=320)
    settings = ServiceSettings(
        workers=1, queue_size=0, request_timeout_s=0.3, upload_dir=tmp_path / "up", worker_threads=1
    )
    (tmp_path / "up").mkdir()
    with TestClient(create_app(detect_model_dir, settings)) as slow:
        started = time.monotonic()
        response = post_video(slow, long_video)  # takes seconds, not 0.3 s
        assert response.status_code == 504, response.text
        assert response.json()["status"] == "timeout"
        assert time.monotonic() - started < 5.0
        assert wait_until_empty(tmp_path / "up") == []  # the worker was killed, the upload deleted


# --- live server: sockets, concurrency, memory -------------------------------------------------------


def _vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def _worker_pids(server_pid: int) -> set[int]:
    """Pool workers: the server's children started by multiprocessing's spawn."""
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == server_pid and b"multiprocessing.spawn" in (entry / "cmdline").read_bytes():
                pids.add(int(entry.name))
        except (OSError, ValueError, IndexError):  # not a process, or it just ended
            continue
    return pids


def test_live_server_rejects_a_chunked_oversize_body_while_it_streams(live_server: LiveServer) -> None:
    host, port = live_server.url.removeprefix("http://").split(":")
    limit = 8 * 2**20
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/detect HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=b0undary\r\n\r\n"
        )
        sent, reply = 0, b""
        for piece in _multipart_chunks(4 * limit):  # never finished: no terminating chunk is sent
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            except OSError:  # the server closed the connection after answering
                break
            sent += len(piece)
            if select.select([sock], [], [], 0)[0]:  # the server has answered (or closed)
                reply = sock.recv(65536)
                break
        while b"\r\n\r\n" not in reply:
            more = sock.recv(65536)
            if not more:
                break
            reply += more
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent < 4 * limit  # answered before the body ended
    assert wait_until_empty(live_server.upload_root) == []


def padded_mp4(video: Path, out: Path, pad_bytes: int) -> Path:
    """``video`` (an MP4) followed by a ``free`` box of random bytes: still a valid MP4, just larger."""
    pad = np.random.default_rng(3).integers(0, 256, pad_bytes, dtype=np.uint8).tobytes()
    out.write_bytes(video.read_bytes() + (8 + pad_bytes).to_bytes(4, "big") + b"free" + pad)
    return out


def test_live_server_removes_a_partial_upload_when_the_client_goes_away(live_server: LiveServer) -> None:
    host, port = live_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/detect HTTP/1.1\r\nHost: test\r\nContent-Length: 2000000\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + b"\0" * 300_000
        )
        deadline = time.monotonic() + 10
        while not spooled(live_server.upload_root) and time.monotonic() < deadline:
            time.sleep(0.02)  # until the server has started spooling
        assert spooled(live_server.upload_root), "the upload never reached the disk"
    assert wait_until_empty(live_server.upload_root) == []
    assert httpx.get(f"{live_server.url}/v1/health").json()["admitted"] == 0


def test_live_server_answers_8_concurrent_uploads_with_bounded_memory(
    live_server: LiveServer, tmp_path: Path, astronaut_rgb: np.ndarray, face_clip_writer: Callable[..., Path]
) -> None:
    # 5 MB each (a 12-frame face clip padded with a 'free' box): 40 MB in flight if bodies were buffered.
    clip = face_clip_writer(tmp_path / "face12.mp4", [astronaut_rgb], frames=12)
    video = padded_mp4(clip, tmp_path / "padded.mp4", 5 * 2**20)
    size = video.stat().st_size
    pid = live_server.process.pid
    with httpx.Client(base_url=live_server.url, timeout=300) as http:
        assert post_video(http, video).status_code == 200  # warm-up: every code path imported
        baseline_kb, workers = _vm_kb(pid, "VmHWM"), _worker_pids(pid)
        responses = _post_concurrently(lambda: post_video(http, video), 8)
        health = http.get("/v1/health").json()
    assert len(workers) == 2 and _worker_pids(pid) == workers  # the same two model-holding processes
    assert [r.status_code for r in responses] == [200] * 8, [r.text[:200] for r in responses]
    assert all(r.json()["videos"][0]["status"] == "ok" for r in responses)
    growth_mb = (_vm_kb(pid, "VmHWM") - baseline_kb) / 1024
    # Bodies are streamed to disk 64 KB at a time, so the peak may grow by a few MB of per-request
    # buffers and JSON (measured: 3.5-4 MB over a 48 MB baseline; the server process never imports
    # torch); buffering even two of the eight 5 MB uploads would add more than 10 MB.
    assert growth_mb < 10, f"server peak RSS grew by {growth_mb:.1f} MB for 8 x {size / 2**20:.1f} MB"
    assert health["admitted"] == 0 and health["running"] == 0
    assert wait_until_empty(live_server.upload_root) == []


def test_live_server_answers_503_with_retry_after_past_its_capacity(
    live_server: LiveServer, face_video: Path
) -> None:
    """The real uvicorn server (2 workers + queue 8 = capacity 10, loopback only): 14 at once."""
    with httpx.Client(base_url=live_server.url, timeout=300) as http:
        capacity = http.get("/v1/health").json()["capacity"]
        responses = _post_concurrently(lambda: post_video(http, face_video), capacity + 4)
        health = http.get("/v1/health").json()
    codes = Counter(r.status_code for r in responses)
    assert set(codes) == {200, 503} and 2 <= codes[200] <= capacity, codes
    for response in responses:
        if response.status_code == 503:
            assert response.json()["status"] == "busy"
            assert 1 <= int(response.headers["retry-after"]) <= 600
    assert health["admitted"] == 0
    assert wait_until_empty(live_server.upload_root) == []


# --- CLI ---------------------------------------------------------------------------------------------


def test_cli_serve_hands_model_and_settings_to_the_app(
    detect_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from deepfake_detect.cli.app import _load_commands, app
    from deepfake_detect.service.app import MODEL_ENV, SETTINGS_ENV, app_from_env

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.setenv(MODEL_ENV, "unset")  # restored after the test
    monkeypatch.setenv(SETTINGS_ENV, "{}")
    _load_commands()
    args = ["serve", "--model", str(detect_model_dir), "--port", "8123", "--workers", "2"]
    result = CliRunner().invoke(app, [*args, "--max-upload-mb", "3"])
    assert result.exit_code == 0, result.output
    ((target,), options) = calls[0]
    assert target == "deepfake_detect.service.app:app_from_env" and options["factory"] is True
    assert (options["host"], options["port"]) == ("127.0.0.1", 8123)
    settings = app_from_env().state.settings
    assert (settings.workers, settings.max_upload_mb) == (2, 3.0)

    monkeypatch.setenv("XDG_CACHE_HOME", str(detect_model_dir.parent / "empty-cache"))
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 1 and "no model given" in result.output
