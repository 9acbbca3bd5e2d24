"""Per-chain readiness and gauges: scanner loop running, node answering, scanner caught up, block lag
and RPC latency."""

from __future__ import annotations

import time
from collections.abc import Mapping

from settlerd.adapters import ChainAdapter, SyncReporting
from settlerd.api import Metrics, Readiness
from settlerd.api.readiness import Check
from settlerd.chains.supervisor import LoopHealth

# A scanner polls every few seconds: a block or two behind is normal between polls, more is not.
MAX_READY_LAG_BLOCKS = 2


def _check(name: str, adapter: ChainAdapter, loop: LoopHealth | None, metrics: Metrics) -> Check:
    async def check() -> None:
        problem = loop.problem() if loop is not None else None
        if problem is not None:
            raise RuntimeError(problem)
        if not isinstance(adapter, SyncReporting):
            return
        started = time.monotonic()
        scanned, tip = await adapter.sync_status()
        metrics.set_rpc_latency(name, time.monotonic() - started)
        lag = max(0, tip - scanned)
        metrics.set_block_lag(name, lag)
        if lag > MAX_READY_LAG_BLOCKS:
            raise RuntimeError(f"chain {name}: scanner at block {scanned}, node at {tip} ({lag} behind)")

    return check


def engine_check(unresumable: Mapping[str, str]) -> Check:
    async def check() -> None:
        if unresumable:
            first = next(iter(unresumable.items()))
            raise RuntimeError(f"{len(unresumable)} swap(s) not resumed, e.g. {first[0]}: {first[1]}")

    return check


def register(
    adapters: Mapping[str, ChainAdapter],
    readiness: Readiness,
    metrics: Metrics,
    loops: Mapping[str, LoopHealth] | None = None,
) -> None:
    """A readiness check per chain: its supervised loop not failing (``loops``), its scanner caught up."""
    loops = loops or {}
    for name, adapter in adapters.items():
        if isinstance(adapter, SyncReporting) or name in loops:
            readiness.add(f"chain:{name}", _check(name, adapter, loops.get(name), metrics))
