"""A chain's worker: claims nearest their deadline first, then refunds, then locks (S3); no work twice."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from settlerd.engine.workers import ChainWorker, Job
from settlerd.swap import Leg, Spend

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(swap_id: str, spend: Spend, minutes: int, leg: Leg = Leg.ONE) -> Job:
    return Job(swap_id, leg, spend, T0 + timedelta(minutes=minutes))


class Recorder:
    """Carries out jobs by noting them; the first one waits until released, so the rest queue up."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.release = asyncio.Event()
        self.idle = asyncio.Event()
        self.fail: set[str] = set()

    async def __call__(self, job: Job) -> None:
        if not self.done:
            self.done.append(job.swap_id)
            await self.release.wait()
            return
        self.done.append(job.swap_id)
        if job.swap_id in self.fail:
            raise RuntimeError(f"node down for {job.swap_id}")


async def drain(worker: ChainWorker) -> None:
    for _ in range(1000):
        if worker.pending() == 0:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the worker did not finish its queue")


async def run_with(worker: ChainWorker, recorder: Recorder, *jobs: Job) -> None:
    async with asyncio.TaskGroup() as tasks:
        runner = tasks.create_task(worker.run(), name="worker")
        worker.submit(job("first", Spend.LOCK, 0))
        await asyncio.sleep(0)  # the worker takes the first job and waits in it
        for queued in jobs:
            worker.submit(queued)
        recorder.release.set()
        await drain(worker)
        runner.cancel()


async def test_claims_nearest_their_deadline_go_first_then_refunds_then_locks() -> None:
    recorder = Recorder()
    worker = ChainWorker("btc", recorder)
    await run_with(
        worker,
        recorder,
        job("lock-early", Spend.LOCK, 1),
        job("refund-late", Spend.REFUND, 50),
        job("claim-late", Spend.CLAIM, 90),
        job("refund-early", Spend.REFUND, 20),
        job("claim-near", Spend.CLAIM, 30),
        job("claim-nearest", Spend.CLAIM, 10),
    )
    assert recorder.done == [
        "first",
        "claim-nearest",
        "claim-near",
        "claim-late",
        "refund-early",
        "refund-late",
        "lock-early",
    ]


async def test_work_queued_or_running_is_not_queued_again() -> None:
    recorder = Recorder()
    worker = ChainWorker("btc", recorder)
    claim = job("claim", Spend.CLAIM, 10)
    await run_with(
        worker,
        recorder,
        job("first", Spend.LOCK, 0),  # still running
        claim,
        claim,
        job("claim", Spend.CLAIM, 10, leg=Leg.TWO),  # another leg: other work
    )
    assert recorder.done == ["first", "claim", "claim"]


async def test_a_failing_job_is_logged_once_a_minute_and_the_queue_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="settlerd.engine.executor")
    recorder = Recorder()
    recorder.fail = {"broken"}
    worker = ChainWorker("btc", recorder)
    await run_with(worker, recorder, job("broken", Spend.REFUND, 5), job("after", Spend.LOCK, 1))
    async with asyncio.TaskGroup() as tasks:
        runner = tasks.create_task(worker.run(), name="worker")
        worker.submit(job("broken", Spend.REFUND, 5))  # the next tick finds it again
        await drain(worker)
        runner.cancel()
    assert recorder.done == ["first", "broken", "after", "broken"]
    warnings = [r.getMessage() for r in caplog.records if "broken" in r.getMessage()]
    assert len(warnings) == 1 and "node down for broken" in warnings[0]
