"""Run work in child processes so that a crash, a hang or a memory blow-up costs one item, not the caller."""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import math
import multiprocessing
import operator
import os
import pickle
import queue
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Literal, TypeAlias, TypeVar

from deepfake_detect.infra.runtime import tune_malloc

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

FailureKind = Literal["crash", "timeout", "error"]


@dataclass(frozen=True)
class WorkerFailure:
    """Why an item produced no result. ``details`` holds the child's traceback for ``error``.

    ``out_of_memory``: the worker went past ``memory_mb``, raised MemoryError, or was SIGKILLed from
    outside (on Linux, most often the kernel's out-of-memory killer); callers map failures on it and
    ``kind``, never on the message.
    """

    kind: FailureKind
    message: str
    details: str = field(default="", compare=False)
    out_of_memory: bool = False


_Results: TypeAlias = Iterator[tuple[T, R | WorkerFailure]]


class IsolationError(RuntimeError):
    """Raised by :func:`run_isolated`, and by a pool whose workers cannot start; carries the failure."""

    def __init__(self, failure: WorkerFailure) -> None:
        self.failure = failure
        super().__init__(f"{failure.kind}: {failure.message}")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _worker_main(conn: Connection, init: Callable[..., None] | None, init_args: tuple[Any, ...]) -> None:
    """Body of a worker: initialise, then answer (task_id, pickled (fn, item)) messages until None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business; it closes the pool
    _exit_with_parent(os.getppid())
    tune_malloc()  # spawn children start with glibc's defaults
    try:
        if init is not None:
            init(*init_args)
        reply: tuple[Any, ...] = ("ready", _rss_mb(os.getpid()) or 0.0)  # the baseline of memory_mb
    except BaseException as exc:
        reply = ("init_error", _describe(exc), traceback.format_exc())
    fatal = reply[0] == "init_error"
    while True:
        try:
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an unpicklable result
            data = pickle.dumps(("error", reply[1], f"result cannot be sent back: {_describe(exc)}", ""))
        try:
            conn.send_bytes(data)
            message = None if fatal else conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message is None:
            return
        reply, fatal = _run_task(conn, *message)


def _exit_with_parent(parent: int, interval_s: float = 0.2) -> None:
    """A SIGKILLed parent cannot close the pool: leave at once instead of finishing a task unseen."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _run_task(conn: Connection, task_id: int, payload: bytes) -> tuple[tuple[Any, ...], bool]:
    """(reply message, whether this worker must exit afterwards)."""
    try:
        fn, item = pickle.loads(payload)  # may import fn's module: not counted in timeout_s
        conn.send(("started", task_id))
        return ("ok", task_id, fn(item)), False
    except MemoryError as exc:  # the heap may be in a bad state: report it as a crash and restart
        return ("crash", task_id, _describe(exc), traceback.format_exc(), True), True
    except Exception as exc:
        return ("error", task_id, _describe(exc), traceback.format_exc()), False


@dataclass
class _Task:
    task_id: int
    payload: bytes
    outbox: queue.SimpleQueue[tuple[int, Any]]


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    deadline: float  # time.monotonic() after which it is killed, with the message ``overdue``
    overdue: str
    ready: bool = False
    start_mb: float = 0.0  # resident MB once the initializer ran: memory_mb counts above it
    task: _Task | None = None
    killed: WorkerFailure | None = None  # set when it is being killed or is leaving: no new tasks


def _rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB (Linux /proc), None when it cannot be read."""
    with contextlib.suppress(OSError, StopIteration, ValueError, IndexError):
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        return int(next(line for line in lines if line.startswith("VmRSS:")).split()[1]) / 1024.0
    return None


def _exit_description(exitcode: int | None) -> str:
    if exitcode is None or exitcode >= 0:
        return f"worker process exited with code {exitcode}"
    hint = " (possibly the system ran out of memory)" if -exitcode == signal.SIGKILL else ""
    return f"worker process was killed by {signal.Signals(-exitcode).name}{hint}"


class IsolatedPool:
    """Long-lived "spawn" workers (torch and fork do not mix) that run ``fn(item)``, surviving any item.

    Each worker runs ``initializer(*initargs)`` once, then items one at a time. A manager thread in the
    parent hands out items, reads results as soon as they are ready and, every ``poll_interval_s``, kills
    a worker whose item ran past ``timeout_s`` (kind "timeout") or whose resident set size (VmRSS, Linux
    /proc; shared libraries count, which with torch imported is already most of a GB) exceeds ``memory_mb``
    on top of what it held once its initializer ran (kind "crash"): the limit is for the work on one item,
    whatever the initializer loaded (a 7-member B7 ensemble holds several GB before its first video;
    a fixed limit refused every video with it). The initializer itself is bounded by ``start_timeout_s``
    only. Not RLIMIT_AS: importing the CUDA build of torch alone maps several GB of address space, CUDA and
    per-thread malloc arenas far more (figures: benchmarks/RESULTS.md, "Figures behind the code").
    Crashed and killed workers are replaced; an exception raised by ``fn`` is kind "error" and the worker
    stays. ``close()`` kills busy workers and reaps all. ``fn``, items, results and the initializer must be
    picklable; workers are daemons.
    """

    def __init__(
        self,
        workers: int,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        *,
        poll_interval_s: float = 0.05,
        start_timeout_s: float = 300.0,
    ) -> None:
        if workers < 1 or any(limit is not None and limit <= 0 for limit in (timeout_s, memory_mb)):
            raise ValueError(f"need workers >= 1 and positive limits: {workers}, {timeout_s}, {memory_mb}")
        _dumps("initializer and initargs", (initializer, initargs))
        if memory_mb is not None and not Path("/proc/self/status").exists():
            logger.warning("memory_mb=%d cannot be enforced: /proc/<pid>/status is not readable", memory_mb)
        self._size, self._timeout_s, self._memory_mb = workers, timeout_s, memory_mb
        self._initializer, self._initargs = initializer, initargs
        self._poll_interval_s, self._start_timeout_s = poll_interval_s, start_timeout_s
        self._ctx = multiprocessing.get_context("spawn")
        self._inbox: queue.SimpleQueue[_Task | tuple[str, Any]] = queue.SimpleQueue()
        self._wake_recv, self._wake_send = multiprocessing.Pipe(duplex=False)
        self._post_lock = threading.Lock()
        self._task_ids = iter(range(1 << 62))
        self._failure: WorkerFailure | None = None  # set when the pool itself cannot go on
        self._closed = self._stopping = False  # _stopping, _workers, _pending: manager thread only
        self._workers: list[_Worker] = []
        self._pending: deque[_Task] = deque()
        self._thread = threading.Thread(target=self._manage, name="isolated-pool-manager", daemon=True)
        self._thread.start()
        atexit.register(self.close)  # before multiprocessing's own exit hook kills the workers under us

    def __enter__(self) -> IsolatedPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def imap_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> _Results[T, R]:
        """Yield ``(item, fn(item) or WorkerFailure)`` in completion order; items are read lazily."""
        self._check_usable()
        _dumps("fn", fn)
        return self._iterate(fn, items)

    def close(self) -> None:
        """Stop and reap every worker; idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self._post(("stop", None))
        self._thread.join(timeout=60.0)  # quick: busy workers are killed, idle ones leave
        self._wake_send.close()
        self._wake_recv.close()

    def _iterate(self, fn: Callable[[T], R], items: Iterable[T]) -> _Results[T, R]:
        outbox: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        outstanding: dict[int, T] = {}
        source, exhausted = iter(items), False
        try:
            while True:
                while not exhausted and len(outstanding) < 2 * self._size:
                    try:
                        item = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    payload = _dumps("every item", (fn, item))
                    outstanding[task_id := next(self._task_ids)] = item
                    self._post(_Task(task_id, payload, outbox))
                if not outstanding:
                    return
                task_id, outcome = self._receive(outbox)
                yield outstanding.pop(task_id), outcome
        finally:
            if outstanding and not self._closed and self._thread.is_alive():
                self._post(("cancel", outbox))  # drop the queued ones; running ones finish unseen

    def _receive(self, outbox: queue.SimpleQueue[tuple[int, Any]]) -> tuple[int, Any]:
        while True:
            try:
                return outbox.get(timeout=0.2)
            except queue.Empty:
                self._check_usable()

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise IsolationError(self._failure)
        if self._closed or not self._thread.is_alive():
            raise IsolationError(WorkerFailure("crash", "the pool is closed"))

    def _post(self, message: _Task | tuple[str, Any]) -> None:
        with self._post_lock:
            self._inbox.put(message)
            with contextlib.suppress(OSError):  # a stopped manager: _check_usable reports why
                self._wake_send.send_bytes(b"!")

    def _manage(self) -> None:
        try:
            while not self._stopping:
                self._top_up()
                self._dispatch()
                self._wait_and_service()
                self._supervise()
        except BaseException as exc:  # a bug here must not leave consumers waiting forever
            logger.exception("isolated pool manager failed")
            self._failure = self._failure or WorkerFailure("crash", f"pool manager failed: {_describe(exc)}")
        finally:
            self._shutdown_workers()

    def _top_up(self) -> None:
        while self._failure is None and len(self._workers) < self._size:
            parent_conn, child_conn = self._ctx.Pipe(duplex=True)
            args = (child_conn, self._initializer, self._initargs)
            process = self._ctx.Process(target=_worker_main, args=args, daemon=True)
            process.start()
            child_conn.close()
            deadline, overdue = time.monotonic() + self._start_timeout_s, "not ready within start_timeout_s"
            self._workers.append(_Worker(process, parent_conn, deadline, overdue))

    def _dispatch(self) -> None:
        idle = [w for w in self._workers if w.ready and w.task is None and w.killed is None]
        for worker in idle[: len(self._pending)]:
            task = self._pending.popleft()
            try:
                worker.conn.send((task.task_id, task.payload))
                worker.task, worker.deadline = task, time.monotonic() + self._start_timeout_s
                worker.overdue = "fn and item not loaded within start_timeout_s"
            except OSError:  # it is dying; _wait_and_service handles its exit
                self._pending.appendleft(task)

    def _wait_and_service(self) -> None:
        objects: list[Any] = [self._wake_recv]
        for worker in self._workers:
            objects += [worker.process.sentinel, worker.conn]
        supervising = any(w.task is not None or not w.ready for w in self._workers)
        ready = set(wait(objects, timeout=self._poll_interval_s if supervising else None))
        if self._wake_recv in ready:
            self._drain_inbox()
        for worker in list(self._workers):
            if (worker.conn in ready and not self._read_messages(worker)) or worker.process.sentinel in ready:
                self._on_exit(worker)

    def _drain_inbox(self) -> None:
        while self._wake_recv.poll():
            self._wake_recv.recv_bytes()
        while not self._inbox.empty():  # this thread is the only reader
            message = self._inbox.get()
            if isinstance(message, _Task):
                self._pending.append(message)
            elif message[0] == "cancel":
                self._pending = deque(t for t in self._pending if t.outbox is not message[1])
            else:
                self._stopping = True

    def _read_messages(self, worker: _Worker) -> bool:
        """Handle what the worker sent; False once its end of the pipe is closed (it is exiting)."""
        try:
            while worker.conn.poll():
                raw = worker.conn.recv_bytes()
                try:
                    message = pickle.loads(raw)
                except Exception as exc:
                    message = ("error", worker.task.task_id if worker.task else -1, _describe(exc), "")
                self._on_message(worker, message)
        except (EOFError, OSError):
            return False
        return True

    def _on_message(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            worker.start_mb = float(message[1])
        if kind in ("ready", "started"):
            worker.ready, worker.deadline = True, time.monotonic() + (self._timeout_s or math.inf)
            worker.overdue = f"no result within {self._timeout_s or 0:g} s"
            return
        if kind == "init_error":
            self._fail_pool(WorkerFailure("error", f"worker initializer failed: {message[1]}", message[2]))
            return
        task, worker.task = worker.task, None
        if task is None or task.task_id != message[1]:
            return
        outcome = message[2] if kind == "ok" else WorkerFailure(kind, *message[2:])
        if kind == "crash":  # the worker leaves after reporting a MemoryError
            worker.killed = outcome
        task.outbox.put((task.task_id, outcome))

    def _on_exit(self, worker: _Worker) -> None:
        worker.process.join(timeout=5.0)
        worker.process.kill()  # a no-op unless it closed its pipe but lingers
        worker.process.join()
        self._read_messages(worker)  # a result sent just before it exited still counts
        self._workers.remove(worker)
        worker.conn.close()
        exitcode = worker.process.exitcode
        failure = worker.killed or WorkerFailure(
            "crash", _exit_description(exitcode), out_of_memory=exitcode == -signal.SIGKILL
        )
        if worker.task is not None:
            logger.warning("%s: %s; starting a replacement", worker.process.name, failure.message)
            worker.task.outbox.put((worker.task.task_id, failure))
        elif not worker.ready and not self._stopping:
            self._fail_pool(WorkerFailure("crash", f"worker failed to start: {failure.message}"))

    def _supervise(self) -> None:
        now, memory_mb = time.monotonic(), self._memory_mb
        for worker in self._workers:
            if worker.killed is not None or (worker.ready and worker.task is None):
                continue  # idle workers do not grow
            if now > worker.deadline:
                self._kill(worker, "timeout" if worker.ready else "crash", f"{worker.overdue}; killed")
            elif memory_mb is None or not worker.ready:
                continue
            elif (rss := _rss_mb(worker.process.pid or 0) or 0.0) > memory_mb + worker.start_mb:
                message = (
                    f"exceeded memory limit of {memory_mb} MB (resident {rss:.0f} MB, "
                    f"{worker.start_mb:.0f} MB of it before the first item)"
                )
                self._kill(worker, "crash", message, out_of_memory=True)

    def _kill(self, worker: _Worker, kind: FailureKind, message: str, *, out_of_memory: bool = False) -> None:
        worker.killed = WorkerFailure(kind, message, out_of_memory=out_of_memory)
        worker.process.kill()

    def _fail_pool(self, failure: WorkerFailure) -> None:
        logger.error("isolated pool cannot go on: %s", failure.message)
        self._failure, self._stopping = failure, True

    def _shutdown_workers(self) -> None:
        """Idle workers are asked to leave, busy ones killed; all are reaped within about 2 s."""
        for worker in self._workers:
            if worker.ready and worker.task is None and worker.killed is None:
                with contextlib.suppress(OSError):  # ask idle workers to leave
                    worker.conn.send(None)
            else:
                worker.process.kill()
        deadline = time.monotonic() + 2.0
        for worker in self._workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            worker.process.kill()  # a no-op for a process that has left
            worker.process.join()
            worker.conn.close()
        self._workers.clear()


def run_isolated(
    fn: Callable[..., R],
    *args: Any,
    timeout_s: float | None = None,
    memory_mb: int | None = None,
    **kwargs: Any,
) -> R:
    """Run ``fn(*args, **kwargs)`` once in a fresh child process; raise IsolationError if it fails."""
    _dumps("fn", fn)
    with IsolatedPool(1, timeout_s=timeout_s, memory_mb=memory_mb) as pool:
        ((_, outcome),) = pool.imap_unordered(operator.call, [functools.partial(fn, *args, **kwargs)])
    if isinstance(outcome, WorkerFailure):
        raise IsolationError(outcome)
    return outcome


def _dumps(what: str, obj: object) -> bytes:
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(f"{what} must be picklable (functions: module-level): {_describe(exc)}") from exc
