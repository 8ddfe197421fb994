"""Preprocess and detect on a real Dask LocalCluster (2 worker processes): kills, crashes, resumes, errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepfake_detect.cluster import ClusterError, open_client, parse_cluster_address
from deepfake_detect.inference import Detector, VideoResult, detect_in_worker
from deepfake_detect.types import VideoStatus

distributed = pytest.importorskip("distributed")

ALLOWED_FAILURES = 1  # a task whose Dask worker dies is tried at most twice


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, Any]]:
    """A LocalCluster of 2 single-threaded worker processes: (scheduler address, a client)."""
    import dask

    config = {"distributed.worker.daemon": False, "distributed.scheduler.allowed-failures": ALLOWED_FAILURES}
    with dask.config.set(config):
        local = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, memory_limit=0, dashboard_address=None
        )
    with local, distributed.Client(local) as client:
        yield local.scheduler_address, client


# -- in worker processes --------------------------------------------------------------------------------
def _note_attempt(path: str) -> None:
    attempts = Path(path).parent / "attempts"
    attempts.mkdir(exist_ok=True)
    (attempts / f"{Path(path).name}-{os.getpid()}-{time.monotonic_ns()}").touch()


def crash_or_kill_marked(path: str) -> VideoResult:
    """crash*: segfault the isolated child; kill*: SIGKILL its Dask worker process; else a real detect."""
    name = Path(path).name
    if name.startswith(("crash", "kill")):
        _note_attempt(path)
        if name.startswith("crash"):
            os.kill(os.getpid(), signal.SIGSEGV)
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(60)
    return detect_in_worker(path)


def note_init(folder: str) -> None:
    """Initializer of the isolated children: one file per run."""
    (Path(folder) / f"init-{os.getpid()}").touch()


def child_pid(item: int) -> tuple[int, int]:
    return item, os.getpid()


def slow_detect(path: str) -> VideoResult:
    time.sleep(0.3)  # long enough for the test to kill a worker in the middle
    return detect_in_worker(path)


# -- helpers ----------------------------------------------------------------------------------------------
def _videos(root: Path, face_clip: Path, n: int) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"v{i:02d}.mp4").write_bytes(face_clip.read_bytes())
    return sorted(root.glob("*.mp4"))


def _comparable(video: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in video.items() if k != "timings"}


def _cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "deepfake_detect.cli.app", "detect", *map(str, args)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def haar_detector(detect_model_dir: Path) -> Detector:
    from deepfake_detect.inference import DetectOptions

    return Detector.load(detect_model_dir, options=DetectOptions(face_detector="haar", max_frames=12))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, face_clip_writer: Any, astronaut_rgb: np.ndarray) -> Path:
    root = tmp_path_factory.mktemp("cluster-clip")
    return Path(face_clip_writer(root / "face.mp4", [astronaut_rgb], frames=10, side=128))


# -- addresses and errors -------------------------------------------------------------------------------
def test_addresses_and_an_unreachable_scheduler() -> None:
    assert parse_cluster_address("local:3").local_workers == 3
    assert parse_cluster_address("tcp://10.0.0.1:8786").scheduler == "tcp://10.0.0.1:8786"
    for bad in ("local:0", "local:x", "10.0.0.1:8786", "http://x:1", "tcp://"):
        with pytest.raises(ClusterError):
            parse_cluster_address(bad)
    start = time.monotonic()
    with (
        pytest.raises(ClusterError, match="no Dask scheduler answered"),
        open_client(f"tcp://127.0.0.1:{_free_port()}", connect_timeout_s=2.0),
    ):
        pass
    assert time.monotonic() - start < 6.0


def test_without_dask_the_cluster_option_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with (
        pytest.raises(ClusterError, match=r"pip install \"deepfake-detect\[cluster\]\""),
        open_client("local:1"),
    ):
        pass


def test_cli_unreachable_scheduler_is_a_clear_error_within_seconds(
    tmp_path: Path, clip: Path, detect_model_dir: Path
) -> None:
    start = time.monotonic()
    address = f"tcp://127.0.0.1:{_free_port()}"
    args = [clip, "--model", detect_model_dir, "--cluster", address, "--jsonl", tmp_path / "out.jsonl"]
    done = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "no Dask scheduler answered" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and time.monotonic() - start < 60  # python + torch import
    bad = subprocess.run(_cli(clip, "--cluster", "nowhere"), capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "neither local:N" in bad.stderr


def test_the_initializer_runs_once_per_worker_not_per_task(cluster: tuple[str, Any], tmp_path: Path) -> None:
    from deepfake_detect.cluster import PoolSpec, map_isolated

    address, _ = cluster
    spec = PoolSpec(note_init, (str(tmp_path),), timeout_s=60, memory_mb=None)
    outcomes = dict(map_isolated(address, child_pid, range(12), spec))
    assert sorted(outcomes) == list(range(12)) and all(isinstance(v, tuple) for v in outcomes.values())
    children = {v[1] for v in outcomes.values()}  # type: ignore[index]
    assert len(list(tmp_path.glob("init-*"))) == len(children) <= 2


def test_preprocess_cli_refuses_a_bad_cluster_address(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import deepfake_detect.cli.preprocess  # noqa: F401  (registers the command)
    from deepfake_detect.cli.app import app

    (tmp_path / "data" / "real").mkdir(parents=True)
    done = CliRunner().invoke(
        app, ["preprocess", str(tmp_path / "data"), str(tmp_path / "out"), "--cluster", "x"]
    )
    assert done.exit_code == 1 and "neither local:N" in done.output and not (tmp_path / "out").exists()


# -- detect -------------------------------------------------------------------------------------------------
def test_detect_on_the_cluster_equals_a_local_run(
    cluster: tuple[str, Any], haar_detector: Detector, tmp_path: Path, clip: Path
) -> None:
    address, _ = cluster
    paths = [*_videos(tmp_path / "v", clip, 4), tmp_path / "missing.mp4"]
    local = {r.path: r.to_json() for r in haar_detector.detect_many(paths, workers=2, threads=1)}
    remote = {r.path: r.to_json() for r in haar_detector.detect_many(paths, threads=1, cluster=address)}
    assert local.keys() == remote.keys() == {str(p) for p in paths}
    for path in local:
        assert _comparable(remote[path]) == _comparable(local[path])
    assert remote[str(paths[0])]["status"] == "ok" and remote[str(paths[-1])]["status"] == "not_found"


def test_a_crash_is_undecodable_after_bounded_attempts_and_the_rest_completes(
    cluster: tuple[str, Any], haar_detector: Detector, tmp_path: Path, clip: Path
) -> None:
    address, _ = cluster
    paths = _videos(tmp_path / "v", clip, 3)
    for name in ("crash.mp4", "kill.mp4"):
        (tmp_path / "v" / name).write_bytes(clip.read_bytes())
        paths.append(tmp_path / "v" / name)
    results = {
        Path(r.path).name: r
        for r in haar_detector.detect_many(paths, threads=1, task=crash_or_kill_marked, cluster=address)
    }
    assert results.keys() == {p.name for p in paths}
    assert all(results[p.name].status is VideoStatus.OK for p in paths[:3])
    attempts = sorted(p.name.split("-")[0] for p in (tmp_path / "v" / "attempts").iterdir())
    # the isolated child's crash is final at once; a dying Dask worker is retried allowed-failures times
    assert attempts == ["crash.mp4"] + ["kill.mp4"] * (ALLOWED_FAILURES + 1)
    for name in ("crash.mp4", "kill.mp4"):
        assert results[name].status is VideoStatus.UNDECODABLE and results[name].error


def test_a_worker_killed_mid_run_has_its_videos_rerun_elsewhere(
    cluster: tuple[str, Any], haar_detector: Detector, tmp_path: Path, clip: Path
) -> None:
    address, client = cluster
    paths = _videos(tmp_path / "v", clip, 8)
    clean = {r.path: r.to_json() for r in haar_detector.detect_many(paths, workers=2, threads=1)}
    pids = list(client.run(os.getpid).values())
    seen: list[str] = []
    for result in haar_detector.detect_many(paths, threads=1, task=slow_detect, cluster=address):
        seen.append(result.path)
        if len(seen) == 1:
            os.kill(pids[0], signal.SIGKILL)  # the other worker (or its replacement) takes over
        assert _comparable(result.to_json()) == _comparable(clean[result.path])
    assert sorted(seen) == sorted(clean)  # every video exactly once


def test_jsonl_client_killed_and_rerun_resumes_without_redoing(
    tmp_path: Path, clip: Path, detect_model_dir: Path
) -> None:
    import psutil

    videos = _videos(tmp_path / "v", clip, 12)
    out = tmp_path / "out.jsonl"
    args = [tmp_path / "v", "--model", detect_model_dir, "--face-detector", "haar", "--threads", "1"]
    args += ["--max-frames", "12", "--jsonl", out, "--cluster", "local:2"]
    proc = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    family: set[psutil.Process] = set()
    while not out.exists() or out.read_bytes().count(b"\n") < 2:
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        family |= set(psutil.Process(proc.pid).children(recursive=True))
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for child in family:  # a killed client's local cluster: its workers are orphans now
        if child.is_running():
            child.kill()
    complete = [line for line in out.read_bytes().splitlines(keepends=True) if line.endswith(b"\n")]
    before = [json.loads(line)["path"] for line in complete]
    assert 2 <= len(before) < len(videos), "killed too late to test anything"

    rerun = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(before)} were done before" in rerun.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(v["path"] for v in lines) == sorted(str(v) for v in videos)  # each exactly once
    assert [v["path"] for v in lines[: len(before)]] == before  # nothing finished was redone


# -- preprocess ---------------------------------------------------------------------------------------------
def test_preprocess_on_the_cluster_is_byte_identical_even_when_a_worker_is_killed(
    cluster: tuple[str, Any], tmp_path: Path, astronaut_rgb: np.ndarray
) -> None:
    from deepfake_detect.data.layouts import load_dataset
    from deepfake_detect.preprocess import PreprocessProgress, preprocess_dataset
    from test_preprocess import _config, _folder_dataset

    address, client = cluster
    records = load_dataset("folder", _folder_dataset(tmp_path / "data", astronaut_rgb, n=8)).records
    config = _config()
    preprocess_dataset(records, tmp_path / "local", config, workers=2)
    preprocess_dataset(records, tmp_path / "cluster", config, cluster=address)
    pids = list(client.run(os.getpid).values())

    def kill_a_worker(state: PreprocessProgress) -> None:
        if state.done == 1:
            os.kill(pids[0], signal.SIGKILL)

    preprocess_dataset(records, tmp_path / "killed", config, cluster=address, progress=kill_a_worker)
    expected = (tmp_path / "local" / "manifest.csv").read_bytes()
    crops = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.jpg"))
    for name in ("cluster", "killed"):
        assert (tmp_path / name / "manifest.csv").read_bytes() == expected
        assert sorted(p.relative_to(tmp_path / name) for p in (tmp_path / name).rglob("*.jpg")) == crops
        assert (
            len(list((tmp_path / name / "rows").glob("*.json"))) == 8
            and not (tmp_path / name / ".tmp").exists()
        )


def test_gpu_resources_are_asked_only_when_a_worker_declares_them() -> None:
    from deepfake_detect.cluster import _declared

    class FakeClient:
        def __init__(self, *declared: dict[str, float]) -> None:
            self.info = {"workers": {f"w{i}": {"resources": r} for i, r in enumerate(declared)}}

        def scheduler_info(self) -> dict[str, Any]:
            return self.info

    assert _declared(FakeClient({}, {"GPU": 1.0}), {"GPU": 1.0}) == {"GPU": 1.0}
    assert _declared(FakeClient({}, {}), {"GPU": 1.0}) is None  # tasks would never start
    assert _declared(FakeClient({"GPU": 1.0}), None) is None


def test_cli_jsonl_on_the_cluster_equals_json_video_by_video(
    cluster: tuple[str, Any], tmp_path: Path, clip: Path, detect_model_dir: Path
) -> None:
    from typer.testing import CliRunner

    from deepfake_detect.cli.app import _load_commands, app

    _load_commands()
    address, _ = cluster
    _videos(tmp_path / "v", clip, 3)
    (tmp_path / "v" / "empty.mp4").write_bytes(b"")
    common = [str(tmp_path / "v"), "--model", str(detect_model_dir), "--face-detector", "haar"]
    common += ["--threads", "1"]
    as_json = CliRunner().invoke(app, ["detect", *common, "--json", str(tmp_path / "a.json")])
    as_jsonl = CliRunner().invoke(
        app, ["detect", *common, "--jsonl", str(tmp_path / "b.jsonl"), "--cluster", address]
    )
    assert as_json.exit_code == as_jsonl.exit_code == 1, as_jsonl.output  # empty.mp4 is undecodable
    expected = {v["path"]: v for v in json.loads((tmp_path / "a.json").read_text())["videos"]}
    lines = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert sorted(v["path"] for v in lines) == sorted(expected)
    for video in lines:
        assert _comparable(video) == _comparable(expected[video["path"]])
