"""Each chain adapter's ``run()`` under supervision: restarted with capped backoff whatever it raises.

A scanner that stops is a daemon that no longer sees claims, so no failure may end it: a 502 from a
node, a reset connection, a timeout, garbage JSON or a store error all restart it. Each failure is an
operator alert: an error log line (the first of a streak always, repeats at most once a minute), the
``settlerd_chain_loop_failures_total`` metric, and the chain reported not ready until the loop has run
cleanly again for a while.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from settlerd.adapters import ChainAdapter

log = logging.getLogger("settlerd.chains.supervisor")

BACKOFF_START_S = 1.0  # a one-off hiccup costs a second of watching
BACKOFF_CAP_S = 30.0  # a node back from an outage is watched again within this long
# A restarted loop that ran this long without failing has polled its node a few times: it recovered.
RECOVERED_AFTER_S = 10.0
LOG_EVERY_S = 60.0  # repeats of a failing loop are logged at most this often, not once a restart


class LoopHealth:
    """Whether a chain's loop is failing, as readiness and the operator see it."""

    def __init__(self, chain: str) -> None:
        self.chain = chain
        self.failures = 0  # since the daemon started
        self.streak = 0  # failures since the loop last recovered
        self.last_error: str | None = None  # the latest failure of the current streak

    @property
    def failing(self) -> bool:
        return self.streak > 0

    def problem(self) -> str | None:
        """Why the chain is not ready, in one line, while its loop is failing."""
        if not self.failing:
            return None
        return (
            f"chain {self.chain}: its scanner loop failed {self.streak} time(s) in a row, "
            f"last: {self.last_error}; restarting with backoff"
        )


class ChainLoop:
    """Runs ``adapter.run()`` until cancelled, restarting it after every failure."""

    def __init__(
        self,
        chain: str,
        adapter: ChainAdapter,
        *,
        on_failure: Callable[[str], None] = lambda chain: None,
        backoff_start: float = BACKOFF_START_S,
        backoff_cap: float = BACKOFF_CAP_S,
        recovered_after: float = RECOVERED_AFTER_S,
    ) -> None:
        self.chain = chain
        self.adapter = adapter
        self.health = LoopHealth(chain)
        self._on_failure = on_failure
        self._backoff_start = backoff_start
        self._backoff_cap = backoff_cap
        self._recovered_after = recovered_after
        self._last_logged = -LOG_EVERY_S

    async def run(self) -> None:
        delay = self._backoff_start
        while True:
            began = time.monotonic()
            async with asyncio.TaskGroup() as tasks:
                watch = tasks.create_task(self._mark_recovered(), name=f"chain-{self.chain}-recovery")
                try:
                    await self.adapter.run()
                    error: BaseException = RuntimeError("run() returned; it must run until cancelled")
                except Exception as exc:  # every failure restarts the loop: none may blind the daemon
                    error = exc
                watch.cancel()
            if time.monotonic() - began >= self._recovered_after:
                delay = self._backoff_start  # it had been fine for a while: this is a new incident
            self._failed(error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_cap)

    async def _mark_recovered(self) -> None:
        await asyncio.sleep(self._recovered_after)
        if self.health.failing:
            log.info(
                "chain %s: its scanner loop recovered after %d failure(s)", self.chain, self.health.streak
            )
        self.health.streak = 0
        self.health.last_error = None

    def _failed(self, error: BaseException, delay: float) -> None:
        health = self.health
        health.failures += 1
        health.streak += 1
        health.last_error = _describe(error)
        self._on_failure(self.chain)
        now = time.monotonic()
        if health.streak == 1 or now - self._last_logged >= LOG_EVERY_S:
            self._last_logged = now
            log.error(
                "chain %s: its scanner loop failed (%s); restarting in %.1f s (failure %d in a row; "
                "repeats are logged at most once a minute)",
                self.chain,
                health.last_error,
                delay,
                health.streak,
                exc_info=error if health.streak == 1 else None,
                extra={"chain": self.chain},
            )


def _describe(error: BaseException) -> str:
    try:
        text = str(error)
    except Exception:  # a half-built exception must not end the supervisor that reports it
        text = ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
