"""Carrying out lock, claim and refund actions with write-ahead (S4).

For every spend: look for a transaction already journaled for that swap, leg and purpose; if there is
none, build and sign one and journal it; only then broadcast. A crash anywhere in between ends in the
same journaled transaction being broadcast again, never in a second funding of the same leg. A failure
(node down, refund still non-final) is logged and retried on the next tick. Right before the secret is
revealed (the claim of leg 2) and before leg 2 is locked, the live chain has the last word
(``live_checks``): a withheld reveal waits for the next tick, a refused lock becomes ``LockRefused``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from settlerd import swap
from settlerd.adapters import HtlcSpent, SignedTx
from settlerd.store import TxStatus
from settlerd.swap import Leg, Spend

from . import records
from .live_checks import LiveChecks
from .risk import RiskCheck

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("settlerd.engine.executor")

# A failing action is retried every tick; saying so once a minute is enough for the operator.
FAILURE_LOG_INTERVAL_S = 60.0


class Executor:
    def __init__(self, engine: Engine, risk: RiskCheck) -> None:
        self._engine = engine
        self._risk = risk
        self._live_checks = LiveChecks(engine)
        self._busy: set[tuple[str, Leg, Spend]] = set()
        self._last_failure_log: dict[tuple[str, Leg, Spend], float] = {}

    async def start(self, swap_id: str, action: swap.Action) -> None:
        match action:
            case swap.LockLeg(leg=leg):
                await self._guarded(swap_id, leg, Spend.LOCK)
            case swap.ClaimLeg(leg=leg):
                await self._guarded(swap_id, leg, Spend.CLAIM)
            case swap.RefundLeg(leg=leg):
                await self._guarded(swap_id, leg, Spend.REFUND)

    async def retry(self, swap_id: str) -> None:
        """Whatever the state asked for and was not yet sent: do it (again)."""
        live = self._engine._live.get(swap_id)
        if live is None:
            return
        for leg in (Leg.ONE, Leg.TWO):
            facts = live.state.leg(leg)
            if facts.lock_requested and not facts.lock_sent:
                await self._guarded(swap_id, leg, Spend.LOCK)
            if facts.claim_requested and not facts.claim_sent:
                await self._guarded(swap_id, leg, Spend.CLAIM)
            if facts.refund_requested and not facts.refund_sent:
                await self._guarded(swap_id, leg, Spend.REFUND)

    async def _guarded(self, swap_id: str, leg: Leg, spend: Spend) -> None:
        key = (swap_id, leg, spend)
        if key in self._busy:
            return
        self._busy.add(key)
        try:
            await self._carry_out(swap_id, leg, spend)
            self._last_failure_log.pop(key, None)
        except HtlcSpent as exc:  # not a failure: the spend's chain event is on its way
            log.info(
                "swap %s: %s of leg %s not sent: %s", swap_id, spend, leg, exc, extra={"swap_id": swap_id}
            )
        except Exception as exc:  # a node or adapter failure: the next tick retries from the state
            now = time.monotonic()
            if now - self._last_failure_log.get(key, -FAILURE_LOG_INTERVAL_S) >= FAILURE_LOG_INTERVAL_S:
                self._last_failure_log[key] = now
                log.warning(
                    "swap %s: %s of leg %s failed, retrying every tick: %s",
                    swap_id,
                    spend,
                    leg,
                    exc,
                    extra={"swap_id": swap_id},
                )
        finally:
            self._busy.discard(key)

    async def _journaled(self, swap_id: str, leg: Leg, spend: Spend) -> SignedTx | None:
        txs = await self._engine.store.signed_txs(swap_id=swap_id)
        candidates = [t for t in txs if t.leg == int(leg) and t.purpose == spend.value]
        live_ones = [t for t in candidates if t.status not in (TxStatus.REPLACED, TxStatus.DROPPED)]
        return live_ones[-1].as_signed_tx() if live_ones else None

    async def _carry_out(self, swap_id: str, leg: Leg, spend: Spend) -> None:
        engine = self._engine
        live = engine.live(swap_id)
        state = live.state
        adapter = engine.adapters[state.terms.leg(leg).chain]
        terms = records.htlc_terms(state, leg)
        tx = await self._journaled(swap_id, leg, spend)
        if tx is None:
            if spend is Spend.LOCK:
                refusal = await self._risk.refusal(state, leg)
                if refusal is None and leg is Leg.TWO:
                    refusal = await self._live_checks.leg2_lock_refusal(state)
                if refusal is not None:
                    await engine.apply(swap_id, swap.LockRefused(engine.clock(), leg, refusal))
                    return
                tx = await adapter.build_lock(terms)
            else:
                htlc_id = state.leg(leg).htlc_id
                if htlc_id is None:
                    raise RuntimeError(f"leg {leg} has no HTLC id to spend")
                if spend is Spend.CLAIM:
                    if state.secret is None:
                        raise RuntimeError("the secret is not known")
                    # S1: claiming leg 2 reveals the secret; held back, it is looked at again next tick.
                    if leg is Leg.TWO and not await self._live_checks.may_reveal(state):
                        return
                    tx = await adapter.build_claim(terms, htlc_id, state.secret)
                else:
                    tx = await adapter.build_refund(terms, htlc_id)
            async with engine.store.write() as w:
                await w.record_signed_tx(tx, swap_id=swap_id, leg=int(leg))
        await adapter.broadcast(tx)
        async with engine.store.write() as w:
            await w.mark_tx(tx.txid, TxStatus.BROADCAST, chain=tx.chain)
        log.info(
            "swap %s: %s of leg %s broadcast on %s: %s",
            swap_id,
            spend,
            leg,
            tx.chain,
            tx.txid,
            extra={"swap_id": swap_id, "chain": tx.chain, "txid": tx.txid},
        )
        at = engine.clock()
        if spend is Spend.LOCK:
            htlc_id = str(tx.meta.get("htlc_id") or "")
            if not htlc_id:
                raise RuntimeError(f"adapter {adapter.name} signed a lock without naming its HTLC id")
            await engine.apply(swap_id, swap.LockBroadcast(at, leg, tx.txid, htlc_id))
        elif spend is Spend.CLAIM:
            await engine.apply(swap_id, swap.ClaimBroadcast(at, leg, tx.txid))
        else:
            await engine.apply(swap_id, swap.RefundBroadcast(at, leg, tx.txid))
