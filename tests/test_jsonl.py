"""``detect --jsonl``: durable lines, a torn last line repaired, a killed run resumed with each video once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepfake_detect.inference import VideoResult
from deepfake_detect.inference.jsonl import JsonlError, jsonl_writer, read_jsonl
from deepfake_detect.types import VideoStatus


def _line(path: str, status: str = "ok") -> bytes:
    return json.dumps({"path": path, "status": status}).encode() + b"\n"


def test_a_torn_last_line_is_ignored_and_cut_off(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(_line("a.mp4") + b"not json\n" + _line("b.mp4", "no_face") + b'{"path": "c.mp')
    done = read_jsonl(out)
    assert {k: v.status for k, v in done.items()} == {"a.mp4": "ok", "b.mp4": "no_face"}
    assert out.read_bytes().endswith(b'"c.mp')  # reading alone changes nothing
    read_jsonl(out, repair=True)
    assert out.read_bytes() == _line("a.mp4") + b"not json\n" + _line("b.mp4", "no_face")
    with jsonl_writer(out) as writer:
        writer.write(VideoResult.failed("c.mp4", VideoStatus.NOT_FOUND, "c.mp4: no such file"))
    assert set(read_jsonl(out)) == {"a.mp4", "b.mp4", "c.mp4"}
    assert read_jsonl(tmp_path / "absent.jsonl", repair=True) == {}


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with jsonl_writer(out), pytest.raises(JsonlError, match="another run"), jsonl_writer(out):
        pass
    with pytest.raises(JsonlError, match="cannot write"), jsonl_writer(tmp_path / "out.jsonl" / "x"):
        pass


def _cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "deepfake_detect.cli.app", "detect", *map(str, args)]


def test_killed_and_resumed_on_50_videos_gives_each_video_once(
    tmp_path: Path, face_clip_writer: Any, astronaut_rgb: np.ndarray, detect_model_dir: Path
) -> None:
    clip = face_clip_writer(tmp_path / "face.mp4", [astronaut_rgb], frames=10, side=128)
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(50):
        (folder / f"v{i:02d}.mp4").write_bytes(clip.read_bytes())
    out = tmp_path / "out.jsonl"
    args = [folder, "--model", detect_model_dir, "--face-detector", "haar", "--max-frames", "10"]
    args += ["--workers", "2", "--threads", "1", "--jsonl", out]
    proc = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not out.exists() or out.read_bytes().count(b"\n") < 5:
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with out.open("ab") as handle:  # as if the kill had come in the middle of a line
        handle.write(b'{"path": "' + str(folder).encode())
    n_done = out.read_bytes().count(b"\n")
    assert n_done < 50, "killed too late to test anything"
    time.sleep(1.0)  # the orphaned workers notice that their parent is gone

    rerun = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{n_done} were done before" in rerun.stderr and "50 video(s)" in rerun.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]  # every line is whole
    assert sorted(v["path"] for v in lines) == sorted(str(p) for p in folder.glob("*.mp4"))
    assert {v["status"] for v in lines} == {"ok"}
