"""One worker per chain signs, journals and broadcasts that chain's spends, off the event path.

The chain followers and the ticker only queue work, so a node that hangs or answers slowly delays its
own chain's spends and nothing else: not another chain's events, claims or refunds, not the ticks that
find every swap's deadlines. Within a chain the queue is ordered as S3 asks: claims first, the one
nearest its deadline before the others, then refunds, then locks. Work already queued or running is not
queued twice. A job that fails is not retried here: the next tick finds it again from the swap's state,
and its failure is logged at most once a minute.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from settlerd.adapters import HtlcSpent
from settlerd.swap import Leg, Spend

# What became of an action is logged under the executor's name, as it always was: operators filter on it.
log = logging.getLogger("settlerd.engine.executor")

# A failing action is retried every tick; saying so once a minute is enough for the operator.
FAILURE_LOG_INTERVAL_S = 60.0

# S3: a claim loses its leg if it misses the deadline, a late refund only waits; a lock can always wait.
_RANK = {Spend.CLAIM: 0, Spend.REFUND: 1, Spend.LOCK: 2}

JobKey = tuple[str, Leg, Spend]


@dataclass(frozen=True, slots=True)
class Job:
    """Carry out ``spend`` of ``leg`` of a swap; ``deadline`` is the leg's, which orders the claims."""

    swap_id: str
    leg: Leg
    spend: Spend
    deadline: datetime

    @property
    def key(self) -> JobKey:
        return (self.swap_id, self.leg, self.spend)


class ChainWorker:
    def __init__(self, chain: str, carry_out: Callable[[Job], Awaitable[None]]) -> None:
        self.chain = chain
        self._carry_out = carry_out
        self._queue: asyncio.PriorityQueue[tuple[int, datetime, int, Job]] = asyncio.PriorityQueue()
        self._order = itertools.count()  # equal priorities go in the order they came
        self._pending: set[JobKey] = set()  # queued or running
        self._last_failure_log: dict[JobKey, float] = {}

    def submit(self, job: Job) -> None:
        """Queue ``job`` unless the same spend is already queued or running; never waits."""
        if job.key in self._pending:
            return
        self._pending.add(job.key)
        self._queue.put_nowait((_RANK[job.spend], job.deadline, next(self._order), job))

    def pending(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        """Carry out queued jobs one at a time, until cancelled."""
        while True:
            *_, job = await self._queue.get()
            try:
                await self._carry_out(job)
                self._last_failure_log.pop(job.key, None)
            except HtlcSpent as exc:  # not a failure: the spend's chain event is on its way
                log.info(
                    "swap %s: %s of leg %s not sent: %s",
                    job.swap_id,
                    job.spend,
                    job.leg,
                    exc,
                    extra={"swap_id": job.swap_id},
                )
            except Exception as exc:  # a node or adapter failure: the next tick queues it again
                self._failed(job, exc)
            finally:
                self._pending.discard(job.key)

    def _failed(self, job: Job, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_failure_log.get(job.key, -FAILURE_LOG_INTERVAL_S) < FAILURE_LOG_INTERVAL_S:
            return
        self._last_failure_log[job.key] = now
        log.warning(
            "swap %s: %s of leg %s on %s failed, retrying every tick: %s",
            job.swap_id,
            job.spend,
            job.leg,
            self.chain,
            exc,
            extra={"swap_id": job.swap_id, "chain": self.chain},
        )
