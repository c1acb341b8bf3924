"""Where chunks run: a local process pool or Ray actors, behind one small interface.

Both hold a :class:`~sisguard.audit.worker.ChunkWorker` per worker (sessions loaded once) and
run the same :meth:`ChunkWorker.explain`; the driver (:mod:`.runner`) does not know which one it
drives. A worker that dies (killed, out of memory, a node lost) is reported as
:class:`WorkerLost` for each chunk it held; the executor replaces it and the driver submits those
chunks again. Any other error in a worker ends the audit with that error.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

from sisguard.audit.errors import AuditError
from sisguard.audit.spec import WorkerSpec
from sisguard.audit.worker import Chunk, ChunkOutput, ChunkWorker


@dataclass(frozen=True)
class WorkerLost:
    """The worker running a chunk went away before returning it."""

    reason: str


class Executor(Protocol):
    workers: int

    def submit(self, chunk: Chunk) -> None: ...

    def next_result(self) -> tuple[Chunk, ChunkOutput | WorkerLost]: ...

    def pending(self) -> int: ...

    def close(self) -> None: ...


# -- local process pool ---------------------------------------------------------------------------

#: the worker of this pool process (set by the pool's initializer; a process holds exactly one)
_PROCESS_WORKER: list[ChunkWorker] = []


def _init_process(spec: WorkerSpec) -> None:
    _PROCESS_WORKER.append(ChunkWorker(spec))


def _explain_in_process(chunk: Chunk) -> ChunkOutput:
    return _PROCESS_WORKER[0].explain(chunk)


class LocalExecutor:
    """A ``spawn`` process pool of ``workers`` processes, each with its own sessions."""

    def __init__(self, spec: WorkerSpec, workers: int) -> None:
        import multiprocessing

        self.spec = spec
        self.workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._pool = self._new_pool()
        self._futures: dict[Future[ChunkOutput], tuple[Chunk, ProcessPoolExecutor]] = {}

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers, mp_context=self._context, initializer=_init_process, initargs=(self.spec,)
        )

    def submit(self, chunk: Chunk) -> None:
        self._futures[self._pool.submit(_explain_in_process, chunk)] = (chunk, self._pool)

    def pending(self) -> int:
        return len(self._futures)

    def unfinished(self) -> int:
        """Submitted chunks whose result is not there yet (what losing a worker now would cost)."""
        return sum(1 for f in self._futures if not f.done())

    def next_result(self) -> tuple[Chunk, ChunkOutput | WorkerLost]:
        done, _ = wait(list(self._futures), return_when=FIRST_COMPLETED)
        future = min(done, key=lambda f: self._futures[f][0].index)
        chunk, pool = self._futures.pop(future)
        try:
            return chunk, future.result()
        except BrokenProcessPool as exc:
            # every chunk of a broken pool fails the same way; build one new pool for all of them
            if pool is self._pool:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
            return chunk, WorkerLost(f"a worker process died ({exc})")

    def close(self) -> None:
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)


# -- Ray actors -----------------------------------------------------------------------------------


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse an address whose host and port do not accept a TCP connection (one line)."""
    if address in ("auto", "local"):
        return
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise AuditError(f"Ray address {address!r}: expected host:port (or ray://host:port, or auto)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise AuditError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}") from None


class RayExecutor:
    """Ray actors, each a :class:`ChunkWorker` with ``num_cpus=1`` and ``num_gpus`` as asked."""

    def __init__(self, spec: WorkerSpec, address: str, workers: int | None, num_gpus: float) -> None:
        import logging

        import ray

        check_reachable(address)
        self._ray = ray
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise AuditError(f"cannot connect to the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
        resources = ray.cluster_resources()
        if workers is None:
            workers = int(resources.get("GPU", 0) // num_gpus) if num_gpus else int(resources.get("CPU", 1))
        self.workers = max(1, workers)
        self._spec_ref = ray.put(spec)
        self._remote = ray.remote(num_cpus=1, num_gpus=num_gpus, max_restarts=0)(ChunkWorker)
        self._actors: list[Any] = [self._remote.remote(self._spec_ref) for _ in range(self.workers)]
        self._tasks: dict[Any, tuple[Chunk, int, Any]] = {}  # object ref -> (chunk, actor slot, actor)

    def actor_handles(self) -> list[Any]:
        """The live actors (what a test kills to lose a worker)."""
        return list(self._actors)

    def busiest_actor(self) -> Any | None:
        """The actor with the most submitted chunks whose result is not there yet; None when all are there."""
        refs = list(self._tasks)
        _, not_ready = self._ray.wait(refs, num_returns=len(refs), timeout=0) if refs else ([], [])
        current = [self._tasks[ref] for ref in not_ready]
        load = Counter(slot for _, slot, actor in current if self._actors[slot] is actor)
        return self._actors[load.most_common(1)[0][0]] if load else None

    def _load(self, slot: int) -> int:
        return sum(1 for _, s, _ in self._tasks.values() if s == slot)

    def submit(self, chunk: Chunk) -> None:
        slot = min(range(len(self._actors)), key=self._load)
        actor = self._actors[slot]
        self._tasks[actor.explain.remote(chunk)] = (chunk, slot, actor)

    def pending(self) -> int:
        return len(self._tasks)

    def next_result(self) -> tuple[Chunk, ChunkOutput | WorkerLost]:
        ray = self._ray
        ready, _ = ray.wait(list(self._tasks), num_returns=1)
        ref = ready[0]
        chunk, slot, actor = self._tasks.pop(ref)
        try:
            return chunk, ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            if self._actors[slot] is actor:  # the first of its chunks to fail replaces it
                self._actors[slot] = self._remote.remote(self._spec_ref)
            return chunk, WorkerLost(f"a Ray actor died ({type(exc).__name__})")
        except ray.exceptions.RayTaskError as exc:
            raise exc.as_instanceof_cause() from None

    def close(self) -> None:
        ray = self._ray
        for actor in self._actors:
            ray.kill(actor)
        ray.shutdown()


def make_executor(spec: WorkerSpec, *, workers: int | None, ray_address: str | None, num_gpus: float) -> Executor:
    """A Ray executor when an address is given, else a local pool of ``workers`` (default: the cores)."""
    if ray_address is not None:
        return RayExecutor(spec, ray_address, workers, num_gpus)
    return LocalExecutor(spec, workers or os.cpu_count() or 1)


ExecutorFactory = Callable[[WorkerSpec], Executor]
