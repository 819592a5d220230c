"""The supervisor every long-lived task runs under: any exception is logged and the task runs
again with backoff; a task that died anyway, or keeps failing, is what /healthz reports."""

from __future__ import annotations

import asyncio
import logging

import pytest

from server.supervision import Supervisor
from tests.support.pyclient import wait_for


class Boom(BaseException):
    """Like a pycrdt panic: not an Exception."""


async def test_a_task_survives_any_exception_with_backoff_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor(max_backoff=0.05)
    runs = 0
    ready = asyncio.Event()

    async def body() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise OSError("connection refused")
        if runs == 2:
            raise Boom("panic")
        if runs == 3:
            return  # a loop that ends by mistake is restarted too
        ready.set()
        await asyncio.Event().wait()  # runs until cancelled

    with caplog.at_level(logging.ERROR):
        task = supervisor.spawn("worker", body)
        await asyncio.wait_for(ready.wait(), 5)
    assert runs == 4 and not task.done()
    logged = caplog.text
    assert "task worker failed; restarting it: OSError: connection refused" in logged
    assert "Boom: panic" in logged and "task worker returned" in logged
    # Three failures in a row, the last one just now: reported as failing.
    [problem] = supervisor.problems()
    assert problem["task"] == "worker" and "failed 3 times in a row" in problem["problem"]
    await supervisor.stop(task)
    assert supervisor.problems() == []  # stopped on purpose: not a problem


async def test_a_task_that_died_is_reported() -> None:
    supervisor = Supervisor()

    async def body() -> None:
        await asyncio.Event().wait()

    task = supervisor.spawn("bus", body)
    await asyncio.sleep(0)
    assert supervisor.problems() == []
    task.cancel()  # not through the supervisor: it died
    await wait_for(task.done, 5)
    assert supervisor.problems() == [{"task": "bus", "problem": "the task has died"}]
    await supervisor.stop_all()
