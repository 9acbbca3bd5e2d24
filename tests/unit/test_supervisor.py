"""The chain-loop supervisor: any failure of an adapter's run() restarts it, alerts, and shows in health."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from settlerd.chains.supervisor import ChainLoop
from settlerd.store import StoreError

BACKOFF_S = 0.01
RECOVERED_S = 0.3


def bad_gateway() -> aiohttp.ClientResponseError:
    url = URL("http://127.0.0.1:8545")
    request = aiohttp.RequestInfo(url, "POST", CIMultiDictProxy(CIMultiDict()), url)
    return aiohttp.ClientResponseError(request, (), status=502, message="Bad Gateway")


async def until(check: Callable[[], bool]) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("gave up waiting")


FAILURES: list[BaseException] = [
    bad_gateway(),
    ConnectionResetError("Connection reset by peer"),
    TimeoutError(),
    json.JSONDecodeError("Expecting value", "<html>", 0),
    StoreError("database is locked"),
    KeyError("result"),
]


class Flaky:
    """An adapter whose run() fails with each of ``failures`` in turn, then runs until ``trip`` is given
    a failure to raise, or until cancelled."""

    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = list(failures)
        self.runs = 0
        self.healthy = asyncio.Event()
        self.trip: asyncio.Queue[BaseException] = asyncio.Queue()

    async def run(self) -> None:
        self.runs += 1
        if self.failures:
            raise self.failures.pop(0)
        self.healthy.set()
        raise await self.trip.get()


async def supervised(adapter: Any, failed: list[str]) -> tuple[ChainLoop, asyncio.Task[None]]:
    loop = ChainLoop(
        "btc",
        adapter,
        on_failure=failed.append,
        backoff_start=BACKOFF_S,
        backoff_cap=BACKOFF_S * 4,
        recovered_after=RECOVERED_S,
    )
    return loop, asyncio.create_task(loop.run(), name="chain-btc")


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_every_kind_of_failure_restarts_the_loop_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "settlerd.chains.supervisor")
    adapter, failed = Flaky(FAILURES), []
    loop, task = await supervised(adapter, failed)
    try:
        async with asyncio.timeout(5):
            await adapter.healthy.wait()
        assert adapter.runs == len(FAILURES) + 1
        assert failed == ["btc"] * len(FAILURES)
        assert loop.health.failures == len(FAILURES)
        # Still failing as far as readiness goes: the restarted loop has not proven itself yet.
        problem = loop.health.problem()
        assert problem is not None and "failed 6 time(s) in a row, last: KeyError: 'result'" in problem
        await until(lambda: not loop.health.failing)
        assert loop.health.problem() is None
    finally:
        await stop(task)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    # The first failure of the streak, with its traceback; the repeats within a minute are not logged.
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert "chain btc: its scanner loop failed (ClientResponseError: 502, message='Bad Gateway'" in (
        errors[0].getMessage()
    )
    assert "recovered after 6 failure(s)" in caplog.text


async def test_a_new_streak_after_recovery_is_logged_again(caplog: pytest.LogCaptureFixture) -> None:
    adapter, failed = Flaky([TimeoutError()]), []
    loop, task = await supervised(adapter, failed)
    try:
        await until(lambda: not loop.health.failing and adapter.healthy.is_set())
        adapter.healthy.clear()
        adapter.trip.put_nowait(ConnectionResetError("reset"))
        async with asyncio.timeout(5):
            await adapter.healthy.wait()
        assert loop.health.failing and loop.health.streak == 1
    finally:
        await stop(task)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and "TimeoutError" in errors[0] and "ConnectionResetError: reset" in errors[1]


async def test_cancelling_stops_the_loop_without_counting_a_failure() -> None:
    adapter, failed = Flaky([]), []
    loop, task = await supervised(adapter, failed)
    async with asyncio.timeout(5):
        await adapter.healthy.wait()
    await stop(task)
    assert task.cancelled() and failed == [] and not loop.health.failing


async def test_a_run_that_returns_is_a_failure_too() -> None:
    class Returns:
        runs = 0

        async def run(self) -> None:
            self.runs += 1

    adapter, failed = Returns(), []
    loop, task = await supervised(adapter, failed)
    try:
        await until(lambda: adapter.runs >= 3)
    finally:
        await stop(task)
    assert loop.health.failing
    assert "run() returned" in (loop.health.last_error or "")
