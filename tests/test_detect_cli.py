"""``deepfake-detect detect``: a batch in worker processes, the JSON document, the HTML report, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from deepfake_detect.inference import record_last_model

STATUSES = {"ok", "no_face", "too_short", "undecodable", "no_video_stream", "not_found", "too_large"}
VIDEO_KEYS = {
    "path",
    "status",
    "fake_probability",
    "label",
    "threshold",
    "error",
    "warnings",
    "faces",
    "timings",
    "info",
}
FACE_KEYS = {
    "track_id",
    "n_frames",
    "first_frame",
    "last_frame",
    "start_s",
    "end_s",
    "fake_probability",
    "n_windows",
    "timeline",
    "similarity",
    "similarity_frames",
    "thumbnail_jpeg",
}


def run_cli(args: list[str]) -> Result:
    """``deepfake-detect detect ARGS`` with one torch thread per worker and a wide console."""
    from deepfake_detect.cli.app import _load_commands, app

    _load_commands()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "160")
        return CliRunner().invoke(app, ["detect", *args, "--threads", "1"])


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty user cache: no 'last model' pointer unless a test writes one."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@pytest.fixture(scope="module")
def batch(
    tmp_path_factory: pytest.TempPathFactory, detect_media: dict[str, Path], detect_model_dir: Path
) -> tuple[Result, dict[str, Any], Path]:
    """One CLI run over a folder (nested, with a non-video file) and a missing file: --json and --report."""
    root = tmp_path_factory.mktemp("cli")
    videos = root / "videos"
    (videos / "nested").mkdir(parents=True)
    shutil.copy(detect_media["face"], videos / "face.mp4")
    shutil.copy(detect_media["faces2"], videos / "nested" / "faces2.mp4")
    (videos / "nested" / "empty.mp4").write_bytes(b"")
    (videos / "readme.txt").write_text("not a video")
    out = root / "out.json"
    args = [
        str(videos),
        str(root / "missing.mp4"),
        "--model",
        str(detect_model_dir),
        "--json",
        str(out),
        "--report",
        str(root / "report"),
    ]
    result = run_cli(args)
    return result, json.loads(out.read_text()) if out.exists() else {}, root / "report"


def test_batch_exit_code_and_table(batch: tuple[Result, dict[str, Any], Path]) -> None:
    result, _, _ = batch
    assert result.exit_code == 1, result.output  # empty.mp4 is undecodable, missing.mp4 not found
    assert "Traceback" not in result.output
    for name in ("face.mp4", "faces2.mp4", "empty.mp4", "missing.mp4"):
        assert name in result.output
    assert "readme.txt" not in result.output


def test_json_document_follows_the_schema(batch: tuple[Result, dict[str, Any], Path]) -> None:
    _, document, _ = batch
    assert document.keys() == {"videos", "model"}
    assert document["model"]["backbone"] == "cnn4" and document["model"]["threshold"] == 0.5
    videos = {Path(v["path"]).name: v for v in document["videos"]}
    assert list(videos) == ["face.mp4", "empty.mp4", "faces2.mp4", "missing.mp4"]  # input order, sorted
    expected = {"face.mp4": "ok", "faces2.mp4": "ok", "empty.mp4": "undecodable", "missing.mp4": "not_found"}
    assert {name: v["status"] for name, v in videos.items()} == expected
    for video in document["videos"]:
        assert video.keys() == VIDEO_KEYS and video["status"] in STATUSES
        ok = video["status"] == "ok"
        assert (video["fake_probability"] is not None) == ok == (video["label"] in ("fake", "real"))
        assert (video["error"] is None) == ok
        assert {"decode", "detect", "crop", "embed", "head", "total"} <= video["timings"].keys() or not ok
        for face in video["faces"]:
            assert face.keys() == FACE_KEYS and 0.0 <= face["fake_probability"] <= 1.0
            assert all(p.keys() == {"start_s", "end_s", "fake_probability"} for p in face["timeline"])
            size = len(face["similarity_frames"])
            assert len(face["similarity"]) == size and all(len(row) == size for row in face["similarity"])
    assert len(videos["faces2.mp4"]["faces"]) == 2 and len(videos["face.mp4"]["faces"]) == 1


def test_report_has_one_heatmap_per_face(batch: tuple[Result, dict[str, Any], Path]) -> None:
    _, document, report = batch
    page = (report / "index.html").read_text()
    faces = sum(len(v["faces"]) for v in document["videos"])
    assert faces == 3
    assert page.count("class='similarity'") == faces and page.count("class='timeline'") == faces
    assert page.count("src='data:image/jpeg;base64,") >= faces  # thumbnails inline
    for png in sorted((report / "assets").glob("*.png")):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"assets/{png.name}" in page
    assert len(list((report / "assets").glob("*_similarity.png"))) == faces
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "missing.mp4: no such file." in page and "empty.mp4: is empty (0 bytes)." in page


def test_exit_zero_with_the_demo_model_when_every_video_is_answered(
    isolated_cache: Path, detect_media: dict[str, Path], detect_model_dir: Path
) -> None:
    """No --model: the demo's pointer is used. too_short is an answer, not a failure."""
    record_last_model(detect_model_dir)
    result = run_cli(
        [str(detect_media["face"]), str(detect_media["short"]), "--threshold", "0.01", "--json", "-"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout[result.stdout.index("{") :])
    statuses = [(Path(v["path"]).name, v["status"], v["label"]) for v in document["videos"]]
    assert statuses == [("face.mp4", "ok", "fake"), ("short.mp4", "too_short", None)]
    assert document["model"]["path"] == str(detect_model_dir.resolve())


def test_no_model_says_how_to_get_one(isolated_cache: Path, detect_media: dict[str, Path]) -> None:
    result = run_cli([str(detect_media["face"])])
    assert result.exit_code == 2
    assert "deepfake-detect demo" in result.output and "--model" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threshold", "1.5"], "between 0 and 1"),
        (["--engine", "tensorrt"], "unknown inference engine"),
        (["--face-detector", "dlib"], "unknown face detector"),
    ],
)
def test_bad_options_are_usage_errors(
    args: list[str], message: str, detect_media: dict[str, Path], detect_model_dir: Path
) -> None:
    result = run_cli([str(detect_media["face"]), "--model", str(detect_model_dir), *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_unusable_model_folder_and_empty_folder_are_usage_errors(
    tmp_path: Path, detect_media: dict[str, Path]
) -> None:
    (tmp_path / "model").mkdir()
    result = run_cli([str(detect_media["face"]), "--model", str(tmp_path / "model")])
    assert result.exit_code == 2 and "not a complete model directory" in result.output
    (tmp_path / "empty").mkdir()
    result = run_cli([str(tmp_path / "empty"), "--model", str(tmp_path / "model")])
    assert result.exit_code == 2 and "no video files" in result.output


def test_a_file_name_with_spaces_and_non_ascii_characters(
    tmp_path: Path, detect_media: dict[str, Path], detect_model_dir: Path
) -> None:
    video = tmp_path / "my clips" / "interview 2 – Zoë été.mp4"
    video.parent.mkdir()
    shutil.copy(detect_media["face"], video)
    playlist = tmp_path / "my clips" / "liste lecture ü.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n{video}\n#EXT-X-ENDLIST\n")
    result = run_cli([str(video), str(playlist), "--model", str(detect_model_dir), "--json", "-"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output  # the playlist
    document = json.loads(result.stdout[result.stdout.index("{") :])
    found = [(v["path"], v["status"]) for v in document["videos"]]
    assert found == [(str(video), "ok"), (str(playlist), "unsupported_format")]
    assert document["videos"][1]["error"] == f"{playlist.name}: is an HLS playlist, not a video file."
