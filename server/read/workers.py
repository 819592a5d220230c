"""Heavy reads off the event loop: a small pool of workers, and a bounded queue in front of it.

The text at a past seq and the diff between two seqs replay text changes in pure Python: tens
of milliseconds for a text at a seq, about half a second for a diff over 20,000 events. Run on
the event loop, six readers looping on such diffs held keystrokes for seconds (issue 11). So
they run elsewhere:

- `process` (the default): worker processes, each with its own event loop and its own
  database connections, started on first use. They hold neither the event loop nor the GIL of
  the process that serves keystrokes, and run at a lower CPU priority (`nice`), so on a busy
  machine the scheduler serves the event loop first. A job sends a few arguments and gets
  back the answer; the rows it reads never cross the process boundary.
- `thread`: the same workers as threads of the server's process. They free the event loop but
  still take the GIL away from it every few milliseconds (measured in bench/read_flood.py).
- `off`: no pool; the work runs on the event loop (the old behaviour, kept to measure it).

In front of the pool: at most `workers` jobs run at once; up to `queue` more wait, each at
most `wait` seconds. A request past either bound is refused at once with ReadsBusy (503 with
Retry-After), never queued without bound.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from server.errors import Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
# A job: an async function run in a worker with that worker's context (built once per worker
# by the pool's factory) and the job's arguments. Module-level functions only: a process pool
# pickles them by name.
Job = Callable[..., Awaitable[T]]
KINDS = ("process", "thread", "off")


class ReadsBusy(Unavailable):
    """Every read worker is busy and the queue in front of them is full or too slow."""

    code = "busy"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Runtime:
    """One worker's own event loop, and its context (a Queries with its own connections)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.context = factory()


_local = threading.local()


def _watch_parent() -> None:
    """Exit when the server process dies (SIGKILL gives it no chance to stop its pool)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    multiprocessing.connection.wait([parent.sentinel])
    os._exit(0)


def _init_process(factory: Callable[[], Any], nice: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's process decides when to stop
    if nice:
        os.nice(nice)
    threading.Thread(target=_watch_parent, name="watch-parent", daemon=True).start()
    _local.runtime = _Runtime(factory)
    _local.in_process = True


def _init_thread(factory: Callable[[], Any]) -> None:
    _local.runtime = _Runtime(factory)
    _local.in_process = False


def _warm() -> int:
    return os.getpid()


def _call(job: Job[T], args: tuple[Any, ...]) -> T:
    runtime: _Runtime = _local.runtime
    # In a worker process nothing else runs: the cyclic collector would only rescan the
    # tens of thousands of rows a diff reads (a third of its time); reference counting frees
    # them. A worker thread shares the collector with the server, so leaves it alone.
    collect = _local.in_process and gc.isenabled()
    if collect:
        gc.disable()
    try:
        return runtime.loop.run_until_complete(job(runtime.context, *args))
    finally:
        if collect:
            gc.enable()


class ReadPool:
    """Run jobs in worker processes or threads, at most `workers` at once, with a bounded
    queue in front. `factory` (picklable for processes) builds each worker's context."""

    def __init__(self, factory: Callable[[], Any], *, kind: str = "process", workers: int = 1,
                 queue: int = 16, wait: float = 5.0, nice: int = 10) -> None:
        if kind not in ("process", "thread"):
            raise ValueError(f"unknown read pool kind {kind!r}")
        self.factory = factory
        self.kind = kind
        self.workers = max(1, workers)
        self.queue = max(0, queue)
        self.wait = wait
        self.nice = nice
        self._slots = asyncio.Semaphore(self.workers)
        self._waiting = 0
        self._executor: concurrent.futures.Executor | None = None
        self._closed = False

    def _pool(self) -> concurrent.futures.Executor:
        if self._closed:
            raise Unavailable("the server is shutting down")
        if self._executor is None:
            if self.kind == "process":
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_process, initargs=(self.factory, self.nice))
            else:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    self.workers, thread_name_prefix="read-worker",
                    initializer=_init_thread, initargs=(self.factory,))
        return self._executor

    async def start(self) -> None:
        """Start the workers now rather than on the first heavy read (without waiting)."""
        loop = asyncio.get_running_loop()
        for _ in range(self.workers):
            loop.run_in_executor(self._pool(), _warm).add_done_callback(_retrieve)

    async def stop(self) -> None:
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _admit(self) -> None:
        if self._waiting >= self.queue and self._slots.locked():
            raise ReadsBusy(f"all {self.workers} read workers are busy and {self._waiting} "
                            "reads are waiting; retry shortly")
        self._waiting += 1
        try:
            async with asyncio.timeout(self.wait):
                await self._slots.acquire()
        except TimeoutError:
            raise ReadsBusy(f"all {self.workers} read workers stayed busy for "
                            f"{self.wait:g} s; retry shortly") from None
        finally:
            self._waiting -= 1

    async def run(self, job: Job[T], *args: Any) -> T:
        """job(context, *args) in a worker; ReadsBusy when the queue is full or too slow."""
        await self._admit()
        try:
            future = asyncio.get_running_loop().run_in_executor(self._pool(), _call, job, args)
        except BaseException:
            self._slots.release()
            raise

        def done(f: asyncio.Future[T]) -> None:
            self._slots.release()  # when the job ends, even if its caller went away
            _retrieve(f)

        future.add_done_callback(done)
        try:
            return await asyncio.shield(future)
        except BrokenProcessPool:
            log.error("a read worker process died; starting new ones")
            broken, self._executor = self._executor, None
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            raise Unavailable("a read worker stopped; retry shortly") from None


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so an abandoned job's error is not logged as lost
