"""Run per-video work on a Dask cluster, each item still in an isolated child process (SPEC §10).

``--cluster ADDRESS`` is ``local:N`` (a ``LocalCluster`` of N single-threaded worker processes in this
machine) or a running scheduler (``tcp://host:8786``). :func:`map_isolated` submits one Dask task per
item. Inside a Dask worker the task hands its item to an
:class:`~deepfake_detect.infra.isolation.IsolatedPool` cached in that worker process (one child per
worker thread, built with the caller's initializer, so a face detector or model loads once per worker,
not per task), with the same time and memory limits as a
local run. So a decoder crash or a hang costs one child and gives a ``WorkerFailure`` at once; only a
Dask worker that dies itself (killed, out of memory) makes Dask rerun its tasks elsewhere, at most
``distributed.scheduler.allowed-failures`` + 1 times (Dask's setting, default 3), after which the item
is a ``WorkerFailure`` too. Results come back to the caller (the client) in completion order, which
writes each one at once. Functions, items and results cross the Dask worker as pickled bytes, so a
Dask worker process stays small (no torch); the isolated children unpickle them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
import pickle
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from deepfake_detect.infra.isolation import IsolatedPool, IsolationError, WorkerFailure

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

INSTALL_HINT = 'pip install "deepfake-detect[cluster]"'
DEFAULT_CONNECT_TIMEOUT_S = 5.0
_WINDOW_PER_THREAD = 8  # tasks in flight per worker thread: enough to keep workers busy, bounded memory


class ClusterError(RuntimeError):
    """The cluster cannot be used: Dask is not installed, a bad address, a scheduler that does not answer."""


@dataclass(frozen=True)
class ClusterAddress:
    """A parsed ``--cluster`` value: ``local_workers`` for ``local:N``, else ``scheduler``'s address."""

    text: str
    local_workers: int | None = None

    @property
    def scheduler(self) -> str | None:
        return None if self.local_workers is not None else self.text


def parse_cluster_address(text: str) -> ClusterAddress:
    """``local:N`` (N >= 1) or ``[tcp|tls|inproc|ucx]://host:port``; anything else is a ClusterError."""
    if text.startswith("local:"):
        count = text.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise ClusterError(f"cluster address {text!r}: local:N needs a worker count N >= 1")
        return ClusterAddress(text, int(count))
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in ("tcp", "tls", "inproc", "ucx") or not rest:
        raise ClusterError(
            f"cluster address {text!r} is neither local:N nor a scheduler address such as tcp://host:8786"
        )
    return ClusterAddress(text)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ClusterError(
            f"--cluster needs Dask distributed, which is not installed: {INSTALL_HINT}"
        ) from None
    return distributed


@contextlib.contextmanager
def open_client(address: str, *, connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> Iterator[Any]:
    """A ``distributed.Client`` for ``address``, closed (and a local cluster shut down) on exit."""
    parsed = parse_cluster_address(address)
    distributed = _import_distributed()
    import dask

    if parsed.local_workers is not None:
        # workers start isolated children of their own, which daemonic processes may not have
        with dask.config.set({"distributed.worker.daemon": False}):
            cluster = distributed.LocalCluster(
                n_workers=parsed.local_workers,
                threads_per_worker=1,
                processes=True,
                memory_limit=0,  # the per-video memory limit is the isolation layer's
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        with cluster, distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(parsed.scheduler, timeout=connect_timeout_s)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"no Dask scheduler answered at {address} within {connect_timeout_s:g} s ({exc})"
        ) from None
    with client:
        yield client


def cluster_threads(client: Any) -> int:
    """Worker threads in the cluster now (at least 1)."""
    return max(1, sum(client.nthreads().values()))


# -- worker side ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PoolSpec:
    """How the IsolatedPool inside each Dask worker is built; equal specs share one pool per worker."""

    initializer: Callable[..., None] | None
    initargs: tuple[Any, ...]
    timeout_s: float | None
    memory_mb: int | None

    def wire(self) -> _WireSpec:
        return _WireSpec(_dumps((self.initializer, self.initargs)), self.timeout_s, self.memory_mb)


@dataclass(frozen=True)
class _WireSpec:
    """A PoolSpec as sent to Dask workers: the initializer stays pickled until an isolated child runs it,
    so Dask worker processes never import the heavy modules (torch and the models), only children do."""

    init_blob: bytes
    timeout_s: float | None
    memory_mb: int | None

    def token(self) -> str:
        return hashlib.sha256(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)).hexdigest()


def _dumps(obj: object) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _init_pickled(blob: bytes) -> None:
    """Isolated child's initializer: unpickle and run the caller's."""
    initializer, initargs = pickle.loads(blob)
    if initializer is not None:
        initializer(*initargs)


def _call_pickled(blob: bytes) -> bytes:
    """Isolated child's task: ``fn(item)`` from a pickled pair; the result goes back pickled too."""
    fn, item = pickle.loads(blob)
    return _dumps(fn(item))


_POOLS: dict[str, IsolatedPool] = {}
_POOLS_LOCK = threading.Lock()


def _worker_pool(spec: _WireSpec) -> IsolatedPool:
    """This Dask worker's pool for ``spec``: one isolated child per worker thread, started once."""
    token = spec.token()
    with _POOLS_LOCK:
        pool = _POOLS.get(token)
        if pool is None:
            from distributed import get_worker

            if multiprocessing.current_process().daemon:  # a worker started without daemon=False
                multiprocessing.current_process().daemon = False  # only stops children being refused
            size = get_worker().state.nthreads
            pool = IsolatedPool(size, _init_pickled, (spec.init_blob,), spec.timeout_s, spec.memory_mb)
            _POOLS[token] = pool
            logger.info("worker %d: isolated pool of %d child process(es) started", os.getpid(), size)
    return pool


def close_worker_pools() -> None:
    """Stop this Dask worker's isolated pools (when the worker closes: no children left behind)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close()


def _pool_closer() -> Any:
    """A worker plugin whose teardown calls :func:`close_worker_pools` (built here: Dask is optional)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class ClosePools(WorkerPlugin):
        idempotent = True
        name = "deepfake-detect-close-pools"

        def teardown(self, worker: Any) -> None:
            close_worker_pools()

    return ClosePools()


def run_in_worker_pool(spec: _WireSpec, blob: bytes) -> bytes | WorkerFailure:
    """The Dask task: pickled ``(fn, item)`` run in this worker's isolated pool; the pickled result, or
    a WorkerFailure when the child crashed, hung, blew its memory limit or ``fn`` raised."""
    ((_, outcome),) = _worker_pool(spec).imap_unordered(_call_pickled, [blob])
    return outcome


# -- client side ---------------------------------------------------------------------------------------
def _outcome(future: Any) -> Any:
    """The task's value, or a WorkerFailure when Dask gave up on it; IsolationError passes through."""
    if future.status == "finished":
        value = future.result()
        return pickle.loads(value) if isinstance(value, bytes) else value
    exc = future.exception()
    if isinstance(exc, IsolationError):  # the worker's pool cannot start (e.g. the model does not load)
        raise exc
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        return WorkerFailure("crash", "the Dask workers running it died each time it was tried")
    return WorkerFailure("error", f"Dask task failed: {type(exc).__name__}: {exc}")


def map_isolated(
    address: str,
    fn: Callable[[T], R],
    items: Iterable[T],
    spec: PoolSpec,
    *,
    key: Callable[[T], str] = str,
    resources: dict[str, float] | None = None,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> Iterator[tuple[T, R | WorkerFailure]]:
    """Yield ``(item, fn(item) or WorkerFailure)`` in completion order, one Dask task per item.

    Items are read lazily, a bounded number in flight. ``key`` names the task (Dask's dashboard shows
    it). ``resources`` (e.g. ``{"GPU": 1}``) are asked of each task when some worker declares them
    (``dask worker --resources GPU=1``), else ignored. Raises ClusterError when the cluster cannot be
    reached, IsolationError when workers cannot run.
    """
    distributed = _import_distributed()
    with open_client(address, connect_timeout_s=connect_timeout_s) as client:
        client.register_plugin(_pool_closer())
        window = _WINDOW_PER_THREAD * cluster_threads(client)
        asked = _declared(client, resources)
        wire, source, by_future = spec.wire(), iter(items), {}
        pending = distributed.as_completed()

        def submit_next() -> None:
            for item in source:
                name = f"{getattr(fn, '__name__', 'task')}-{key(item)}"
                options = {"key": _unique(name), "pure": False, "resources": asked}
                future = client.submit(run_in_worker_pool, wire, _dumps((fn, item)), **options)
                by_future[future] = item
                pending.add(future)
                return

        for _ in range(window):
            submit_next()
        for future in pending:
            item = by_future.pop(future)
            outcome = _outcome(future)
            future.release()
            submit_next()
            yield item, outcome


def _declared(client: Any, resources: dict[str, float] | None) -> dict[str, float] | None:
    """``resources`` if some worker declares them all, else None (tasks would wait forever)."""
    if not resources:
        return None
    workers = client.scheduler_info().get("workers", {}).values()
    if any(all(name in w.get("resources", {}) for name in resources) for w in workers):
        return resources
    logger.info("no Dask worker declares %s; tasks run on any worker", sorted(resources))
    return None


def _unique(name: str) -> str:
    return f"{name[:200]}-{os.urandom(6).hex()}"
