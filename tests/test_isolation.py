"""IsolatedPool and run_isolated with real child processes: crashes, hangs, memory hogs and exceptions."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from deepfake_detect.infra.isolation import IsolatedPool, IsolationError, WorkerFailure, run_isolated

# Worker functions must be importable by the spawned children: module level, this module.
_STATE: dict[str, str] = {}


def remember(value: str) -> None:
    _STATE["greeting"] = value


def greet(item: int) -> tuple[str, int, int]:
    return _STATE.get("greeting", "none"), item, os.getpid()


def square_or_die(item: int) -> int:
    if item == 3:
        os.kill(os.getpid(), signal.SIGSEGV)
    if item == 5:
        os._exit(1)
    return item * item


def square_or_raise(item: int) -> int:
    if item == 2:
        raise ValueError(f"bad item {item}")
    return item * item


def sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def hog_memory(megabytes: int) -> int:
    block = np.ones(megabytes * 1024 * 1024, dtype=np.uint8)  # touched pages count as resident
    if megabytes > 100:
        time.sleep(3.0)  # hold it long enough for the watchdog (it polls every 50 ms)
    return int(block[::4096].sum())


_BALLAST: list[np.ndarray] = []


def load_ballast(megabytes: int) -> None:
    """An initializer that keeps ``megabytes`` resident, as loading a large model does."""
    _BALLAST.append(np.ones(megabytes * 1024 * 1024, dtype=np.uint8))


def raise_memory_error(item: int) -> int:
    raise MemoryError("pretend allocation failure")


def count_frames(path: Path) -> int:
    from deepfake_detect.video import iter_frames

    return sum(1 for _ in iter_frames(path))


def failing_initializer() -> None:
    raise RuntimeError("model file missing")


def add(a: int, b: int, *, scale: int = 1) -> int:
    return (a + b) * scale


def _gone(pid: int) -> bool:
    """True when the process no longer exists, not even as a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_results_and_worker_reuse_with_initializer() -> None:
    with IsolatedPool(workers=2, initializer=remember, initargs=("hello",)) as pool:
        results: dict[int, tuple[str, int, int]] = {}
        for item, outcome in pool.imap_unordered(greet, range(8)):
            assert not isinstance(outcome, WorkerFailure), outcome
            results[item] = outcome
    assert sorted(results) == list(range(8))
    assert all(greeting == "hello" and echoed == item for item, (greeting, echoed, _) in results.items())
    pids = {pid for _, _, pid in results.values()}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids  # long-lived workers, not one per item
    assert all(_gone(pid) for pid in pids)


def test_crashes_cost_only_their_item() -> None:
    with IsolatedPool(workers=2) as pool:
        outcomes = dict(pool.imap_unordered(square_or_die, range(8)))
    assert sorted(outcomes) == list(range(8))
    for item in (0, 1, 2, 4, 6, 7):
        assert outcomes[item] == item * item
    segfault, exited = outcomes[3], outcomes[5]
    assert isinstance(segfault, WorkerFailure) and segfault.kind == "crash" and "SIGSEGV" in segfault.message
    assert not segfault.out_of_memory
    assert (
        isinstance(exited, WorkerFailure)
        and exited.kind == "crash"
        and "exited with code 1" in exited.message
    )


def test_exception_is_an_error_and_the_worker_stays() -> None:
    with IsolatedPool(workers=1) as pool:
        outcomes = dict(pool.imap_unordered(square_or_raise, range(4)))
        pids = {pid for _, pid in pool.imap_unordered(sleep_then_pid, [0.0, 0.0])}
    failure = outcomes[2]
    assert isinstance(failure, WorkerFailure)
    assert (failure.kind, failure.message) == ("error", "ValueError: bad item 2")
    assert "square_or_raise" in failure.details  # the child's traceback
    assert [outcomes[i] for i in (0, 1, 3)] == [0, 1, 9]
    assert len(pids) == 1


def test_timeout_kills_and_replaces_the_worker() -> None:
    with IsolatedPool(workers=1, timeout_s=1.0) as pool:
        started = time.monotonic()
        outcomes = list(pool.imap_unordered(sleep_then_pid, [30.0, 0.0, 0.0]))
        elapsed = time.monotonic() - started
    by_item = {item: outcome for item, outcome in outcomes}
    hung = by_item[30.0]
    assert isinstance(hung, WorkerFailure) and hung.kind == "timeout" and "1 s" in hung.message
    assert elapsed < 20.0  # not the 30 s the item wanted
    survivors = [outcome for item, outcome in outcomes if item == 0.0]
    assert len(survivors) == 2 and all(isinstance(pid, int) and _gone(pid) for pid in survivors)


def test_memory_hog_is_killed_not_the_parent() -> None:
    with IsolatedPool(workers=1, memory_mb=400, timeout_s=60) as pool:
        outcomes = dict(pool.imap_unordered(hog_memory, [1000, 1]))
    hog = outcomes[1000]
    assert isinstance(hog, WorkerFailure) and hog.kind == "crash" and hog.out_of_memory
    assert "exceeded memory limit of 400 MB" in hog.message
    assert outcomes[1] == 256  # the next item ran in a fresh worker: 1 MB of ones, every 4096th summed


def test_the_memory_limit_counts_from_what_the_initializer_loaded() -> None:
    # 600 MB loaded by the initializer, then 250 MB for one item: 850+ MB resident, over 400 MB in
    # absolute terms but within 400 MB of the worker's start; 1000 MB for an item is not.
    with IsolatedPool(1, load_ballast, (600,), memory_mb=400, timeout_s=60) as pool:
        outcomes = dict(pool.imap_unordered(hog_memory, [250, 1000]))
    assert outcomes[250] == 250 * 256
    hog = outcomes[1000]
    assert isinstance(hog, WorkerFailure) and hog.kind == "crash" and hog.out_of_memory
    start = int(hog.message.split(", ")[1].split(" MB")[0])
    assert "exceeded memory limit of 400 MB" in hog.message and start >= 600


def test_memory_error_is_a_crash() -> None:
    with IsolatedPool(workers=1) as pool:
        outcomes = dict(pool.imap_unordered(raise_memory_error, [1]))
    assert isinstance(outcomes[1], WorkerFailure) and outcomes[1].kind == "crash"
    assert "MemoryError" in outcomes[1].message and outcomes[1].out_of_memory


def test_early_stop_shuts_down_cleanly() -> None:
    with IsolatedPool(workers=2) as pool:
        for _, outcome in pool.imap_unordered(sleep_then_pid, [0.0] + [5.0] * 6):
            pid = outcome
            stopped = time.monotonic()
            break  # the other worker is busy with a 5 s item
    assert time.monotonic() - stopped < 3.0  # busy workers are killed, not waited for
    assert isinstance(pid, int) and _gone(pid)
    assert multiprocessing.active_children() == []


def test_timeout_counts_work_not_a_slow_consumer() -> None:
    with IsolatedPool(workers=1, timeout_s=1.0) as pool:
        outcomes = []
        for _, outcome in pool.imap_unordered(sleep_then_pid, [0.3, 0.3]):
            outcomes.append(outcome)
            if len(outcomes) == 1:
                time.sleep(1.5)  # the second item finishes meanwhile; its result waits in the parent
    assert len(outcomes) == 2 and all(isinstance(pid, int) for pid in outcomes)


def test_pool_is_reusable_after_an_abandoned_iteration() -> None:
    with IsolatedPool(workers=1) as pool:
        for _ in pool.imap_unordered(square_or_raise, range(10)):
            break
        assert dict(pool.imap_unordered(square_or_raise, [4, 5])) == {4: 16, 5: 25}


def test_initializer_failure_raises() -> None:
    expected = "initializer failed: RuntimeError: model file missing"
    pool = IsolatedPool(workers=1, initializer=failing_initializer)
    with pool, pytest.raises(IsolationError, match=expected):
        list(pool.imap_unordered(square_or_raise, [1]))


def test_unpicklable_arguments_are_rejected() -> None:
    with IsolatedPool(workers=1) as pool:
        with pytest.raises(TypeError, match="fn must be picklable"):
            pool.imap_unordered(lambda x: x, [1])
        with pytest.raises(TypeError, match="every item must be picklable"):
            list(pool.imap_unordered(square_or_raise, [3, lambda: 1]))  # type: ignore[arg-type]
        assert dict(pool.imap_unordered(square_or_raise, [3])) == {3: 9}  # still usable
    with pytest.raises(TypeError, match="initializer"):
        IsolatedPool(workers=1, initializer=lambda: None)
    with pytest.raises(ValueError):
        IsolatedPool(workers=0)
    with pytest.raises(ValueError):
        IsolatedPool(workers=1, timeout_s=0)


def test_closed_pool_refuses_work() -> None:
    pool = IsolatedPool(workers=1)
    pool.close()
    pool.close()  # idempotent
    with pytest.raises(IsolationError, match="closed"):
        pool.imap_unordered(square_or_raise, [1])


def test_decoding_in_workers_reports_bad_files_per_item(tmp_path: Path) -> None:
    from deepfake_detect.video import write_video

    good = tmp_path / "good.mp4"
    write_video(good, [np.full((48, 64, 3), 9 * i, np.uint8) for i in range(6)])
    with IsolatedPool(workers=1, timeout_s=60) as pool:
        outcomes = dict(pool.imap_unordered(count_frames, [good, tmp_path / "missing.mp4"]))
    assert outcomes[good] == 6
    missing = outcomes[tmp_path / "missing.mp4"]
    assert isinstance(missing, WorkerFailure) and missing.kind == "error"
    assert (
        missing.message.startswith("VideoNotFoundError: ") and "missing.mp4: no such file" in missing.message
    )


def test_run_isolated(tmp_path: Path) -> None:
    assert run_isolated(add, 2, 3, scale=4) == 20
    with pytest.raises(IsolationError) as caught:
        run_isolated(square_or_die, 3)
    assert caught.value.failure.kind == "crash"
    with pytest.raises(IsolationError) as timed_out:
        run_isolated(sleep_then_pid, 30.0, timeout_s=0.5)
    assert timed_out.value.failure.kind == "timeout"


def test_worker_leaves_when_its_parent_is_killed(tmp_path: Path) -> None:
    """SIGKILL on the parent cannot run close(): the worker must notice and exit by itself."""
    import subprocess
    import sys

    pid_file = tmp_path / "worker.pid"
    script = (
        "import os, sys, time\n"
        "from deepfake_detect.infra.isolation import IsolatedPool\n"
        "from tests.test_isolation import write_pid_then_sleep\n"
        "with IsolatedPool(1) as pool:\n"
        f"    for _ in pool.imap_unordered(write_pid_then_sleep, [{str(pid_file)!r}]):\n"
        "        pass\n"
    )
    root = Path(__file__).resolve().parent.parent
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=root)
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pid_file.exists(), "the worker never started"
        worker = int(pid_file.read_text())
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not _gone(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(worker), "the worker outlived its killed parent"
    finally:
        parent.kill()


def write_pid_then_sleep(path: str) -> int:
    Path(path).write_text(str(os.getpid()))
    time.sleep(60)
    return 0
