"""Long-lived tasks that survive any exception, and the record `/healthz` reads of them.

A node runs a few tasks for as long as it lives: the projector, its lease heartbeat, the Redis
bus's subscriber, publisher and watchdog, the document sweep. Each runs under
`Supervisor.spawn`: whatever its body raises (a driver error that slipped through, a bug, a
pycrdt panic), the supervisor logs it with its traceback, waits (0.1 s doubling up to 5 s), and
runs the body again. A body that returns is restarted too: these loops are meant to run until
cancelled. Only cancellation ends one, and `stop` is the only canceller.

`problems()` names what a health check must report: a task that ended anyway (cancelled by
someone else), and one that keeps failing (three failures in a row, the last one recent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_BACKOFF = 5.0
FAILING_AFTER = 3  # consecutive failures before a task counts as failing
HEALTHY_RUN = 30.0  # a body that ran this long before failing starts its backoff over


@dataclass
class TaskState:
    name: str
    task: asyncio.Task[None] | None = None
    failures: int = 0  # in a row
    total_failures: int = 0
    last_error: str = ""
    last_failure: float = 0.0  # time.monotonic()
    stopping: bool = field(default=False)


class Supervisor:
    def __init__(self, *, max_backoff: float = MAX_BACKOFF) -> None:
        self.max_backoff = max_backoff
        self._tasks: dict[str, TaskState] = {}

    def spawn(self, name: str, body: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run `body()` as a task named `name`, restarted with backoff after any failure."""
        state = TaskState(name)
        self._tasks[name] = state
        state.task = asyncio.create_task(self._forever(state, body), name=name)
        return state.task

    async def _forever(self, state: TaskState, body: Callable[[], Awaitable[None]]) -> None:
        while True:
            started = time.monotonic()
            try:
                await body()
            except asyncio.CancelledError:
                raise
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # pycrdt panics are BaseExceptions
                error = f"{type(exc).__name__}: {exc}"[:300]
                log.error("task %s failed; restarting it: %s", state.name, error,
                          exc_info=exc)
            else:
                error = "returned"
                log.error("task %s returned; restarting it", state.name)
            now = time.monotonic()
            if now - started > HEALTHY_RUN:
                state.failures = 0
            state.failures += 1
            state.total_failures += 1
            state.last_error = error
            state.last_failure = now
            await asyncio.sleep(min(0.1 * 2 ** (state.failures - 1), self.max_backoff))

    async def stop(self, task: asyncio.Task[None] | None) -> None:
        """Cancel one of our tasks and wait for it."""
        if task is None:
            return
        state = self._tasks.get(task.get_name())
        if state is not None and state.task is task:
            state.stopping = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def stop_all(self) -> None:
        for state in list(self._tasks.values()):
            await self.stop(state.task)

    def problems(self, recent: float = 60.0) -> list[dict[str, str]]:
        now = time.monotonic()
        found: list[dict[str, str]] = []
        for state in self._tasks.values():
            task = state.task
            if task is None or state.stopping:
                continue
            if task.done():
                found.append({"task": state.name, "problem": "the task has died"})
            elif state.failures >= FAILING_AFTER and now - state.last_failure < recent:
                found.append({"task": state.name,
                              "problem": f"failed {state.failures} times in a row; last: "
                                         f"{state.last_error}"})
        return found

    def status(self) -> dict[str, dict[str, object]]:
        return {
            name: {"running": s.task is not None and not s.task.done(),
                   "failures": s.total_failures, "last_error": s.last_error}
            for name, s in self._tasks.items()
        }
