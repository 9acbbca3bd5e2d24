"""Readiness checks as a registry: the store's is built in; the engine adds nodes and scanners.

A check is a coroutine that returns when the component is ready and raises with an operator-facing
message when it is not. ``/v1/ready`` runs them all concurrently, each under a time limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from settlerd.store import Store
from settlerd.store.timestamps import canonical_timestamp, utcnow

Check = Callable[[], Awaitable[None]]

# A check slower than this counts as failed: a probe must answer well inside a load balancer's timeout.
CHECK_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    error: str | None


class Readiness:
    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} is already registered")
        self._checks[name] = check

    async def run(self) -> list[CheckResult]:
        names = list(self._checks)
        outcomes = await asyncio.gather(*(self._run_one(self._checks[name]) for name in names))
        return [CheckResult(name, error is None, error) for name, error in zip(names, outcomes, strict=True)]

    @staticmethod
    async def _run_one(check: Check) -> str | None:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        except TimeoutError:
            return f"no answer within {CHECK_TIMEOUT_S:g} s"
        except Exception as exc:
            return str(exc) or type(exc).__name__
        return None


def store_writable(store: Store) -> Check:
    """Proves a write commits: takes the writer lock and the database's, as any state change must."""

    async def check() -> None:
        async with store.write() as tx:
            await tx.put_cursor("api", "ready_probe", canonical_timestamp(utcnow()))

    return check
