"""Carrying out lock, claim and refund actions with write-ahead (S4), one job of a chain's worker at a time.

For every spend: look for a transaction already journaled for that swap, leg and purpose; if there is
none, build and sign one and journal it; only then broadcast. A crash anywhere in between ends in the
same journaled transaction being broadcast again, never in a second funding of the same leg. A failure
(node down, refund still non-final) is raised to the worker and retried from the state on a later tick.
Right before the secret is revealed (the claim of leg 2), and again before a journaled claim that never
went out is first broadcast, the live chain has the last word (``live_checks``): a withheld reveal waits
for the next tick, and a withheld claim holding a nonce gives it to a no-op (``Cancelling``). A lock is
checked right before it is built and again right before it is broadcast (``lock_timing``, ``risk``): a
refusal becomes ``LockRefused``, and the refused lock is never sent (one holding a nonce is replaced by a
no-op; coins it reserved are released).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from settlerd import swap
from settlerd.adapters import Cancelling, ChainAdapter, Releasing, SignedTx
from settlerd.store import SignedTxRecord, Store, TxStatus
from settlerd.swap import Leg, Spend

from . import records
from .live_checks import LiveChecks
from .lock_timing import LockTiming
from .ports import Apply, Clock, LiveSwaps
from .risk import RiskCheck
from .workers import Job

log = logging.getLogger("settlerd.engine.executor")


class Executor:
    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, ChainAdapter],
        clock: Clock,
        live: LiveSwaps,
        apply: Apply,
        risk: RiskCheck,
        live_checks: LiveChecks,
    ) -> None:
        self._store = store
        self._adapters = adapters
        self._clock = clock
        self._live = live
        self._apply = apply
        self._risk = risk
        self._live_checks = live_checks
        self._timing = LockTiming(clock, live_checks)

    async def carry_out(self, job: Job) -> None:
        """Do ``job`` on the swap's state as it is now; a failure raises, to be retried on a later tick."""
        live = self._live.get(job.swap_id)
        if live is None:
            return  # the swap ended while the job waited
        swap_id, leg, spend = job.swap_id, job.leg, job.spend
        state = live.state
        adapter = self._adapters[state.terms.leg(leg).chain]
        terms = records.htlc_terms(state, leg)
        record = await self._journaled(swap_id, leg, spend)
        reveals = spend is Spend.CLAIM and leg is Leg.TWO
        if record is not None:
            tx = record.as_signed_tx()
            # S1: a reveal journaled but never sent (its node was down) waited while the chain moved on,
            # perhaps past the point where leg 2's refund may open first: it is checked again before it goes.
            if reveals and record.status is TxStatus.SIGNED and not await self._may_send_claim(state, tx):
                return
            # S2 likewise: a lock holding a nonce is journaled before the check after signing, which may
            # have failed on a node or been cut short by a crash; it is checked again before its first
            # broadcast. (One without a nonce is journaled only once that check passed.)
            if spend is Spend.LOCK and record.status is TxStatus.SIGNED and tx.nonce is not None:
                refusal = await self._timing.refusal(state, leg)
                if refusal is not None and await self._refuse(state, leg, adapter, tx, refusal) is None:
                    return
        elif spend is Spend.LOCK:
            lock = await self._new_lock(swap_id, leg, adapter)
            if lock is None:
                return
            tx = lock
        else:
            htlc_id = state.leg(leg).htlc_id
            if htlc_id is None:
                raise RuntimeError(f"leg {leg} has no HTLC id to spend")
            if spend is Spend.CLAIM:
                if state.secret is None:
                    raise RuntimeError("the secret is not known")
                # S1: claiming leg 2 reveals the secret; held back, it is looked at again next tick.
                if reveals and not await self._live_checks.may_reveal(state):
                    return
                tx = await adapter.build_claim(terms, htlc_id, state.secret)
            else:
                tx = await adapter.build_refund(terms, htlc_id)
            await self._journal(tx, swap_id, leg)
        await self._broadcast(swap_id, leg, spend, adapter, tx)

    async def _may_send_claim(self, state: swap.SwapState, tx: SignedTx) -> bool:
        """Whether a journaled, never broadcast claim of leg 2 may go out now. Withheld, one without a
        nonce simply waits (the swap's end drops it); one holding a nonce would stall every later
        transaction of its account, so a no-op takes its nonce and the claim is dropped: a later tick
        signs a new claim if the reveal is ever safe again."""
        if await self._live_checks.may_reveal(state):
            return True
        if tx.nonce is not None:
            adapter = self._adapters[tx.chain]
            await self._cancel(state.swap_id, Leg.TWO, adapter, tx, "its reveal came too late")
        return False

    async def _new_lock(self, swap_id: str, leg: Leg, adapter: ChainAdapter) -> SignedTx | None:
        """Check, build, check again and journal a lock; None when it was refused (``LockRefused``)."""
        state = self._live[swap_id].state
        refusal = await self._timing.refusal(state, leg) or await self._risk.refusal(state, leg)
        if refusal is not None:
            await self._apply(swap_id, swap.LockRefused(self._clock(), leg, refusal))
            return None
        tx = await adapter.build_lock(records.htlc_terms(state, leg))
        try:
            if tx.nonce is not None:
                # It holds the account's next nonces, which the adapter has handed out: journaled before the
                # second check, which reads nodes and can fail, or every later transaction of the account,
                # claims and refunds included, would wait behind the gap. A later tick broadcasts it.
                await self._journal(tx, swap_id, leg)
            current = self._live.get(swap_id)
            refusal = await self._timing.refusal(current.state if current else state, leg)
            if refusal is None and tx.nonce is None:
                await self._journal(tx, swap_id, leg)
        except BaseException:
            if tx.nonce is None:
                self._release(adapter, tx)  # never journaled, so never broadcast by anyone
            raise
        if refusal is None:
            return tx
        return await self._refuse(state, leg, adapter, tx, refusal)

    async def _refuse(
        self, state: swap.SwapState, leg: Leg, adapter: ChainAdapter, tx: SignedTx, refusal: str
    ) -> SignedTx | None:
        """Refuse the signed, never sent lock ``tx`` (``LockRefused``), journaled already if it holds a
        nonce; None, or ``tx`` when it must go out all the same (its adapter cannot cancel it)."""
        swap_id = state.swap_id
        if tx.nonce is None:
            # Signed, never handed to a node: journaled as dropped in one write, so no rebroadcaster
            # ever sends it, and nothing of the leg is on any chain.
            try:
                async with self._store.write() as w:
                    await w.record_signed_tx(tx, swap_id=swap_id, leg=int(leg))
                    await w.mark_tx(tx.txid, TxStatus.DROPPED, chain=tx.chain)
            finally:
                self._release(adapter, tx)  # dropped, or never journaled: never broadcast either way
        elif not await self._cancel(swap_id, leg, adapter, tx, refusal):
            # An adapter that cannot cancel: withheld, the lock would leave a nonce gap that blocks every
            # later transaction of the account, claims and refunds included. It goes out and the swap
            # refunds it at its deadline.
            log.warning(
                "swap %s: %s; the lock on %s holds nonce %s and its adapter cannot cancel it, so it is "
                "broadcast all the same and refunded after %s",
                swap_id,
                refusal,
                tx.chain,
                tx.nonce,
                state.terms.leg(leg).deadline.isoformat(),
                extra={"swap_id": swap_id, "chain": tx.chain},
            )
            return tx
        await self._apply(swap_id, swap.LockRefused(self._clock(), leg, refusal))
        return None

    async def _cancel(self, swap_id: str, leg: Leg, adapter: ChainAdapter, tx: SignedTx, why: str) -> bool:
        """Put a no-op in place of ``tx``, which must never go out, so its nonce is used all the same; False
        when the adapter cannot (it is not ``Cancelling``). Journaled as ``tx``'s replacement, with ``tx``
        dropped, before it is broadcast (S4); from then on the adapter's rebroadcasts keep it moving."""
        if not isinstance(adapter, Cancelling):
            return False
        cancel = await adapter.build_cancel(tx)
        async with self._store.write() as w:
            await w.record_signed_tx(cancel, swap_id=swap_id, leg=int(leg), replaces=tx.txid)
            await w.mark_tx(tx.txid, TxStatus.DROPPED, chain=tx.chain)
        log.warning(
            "swap %s: %s of leg %s on %s is never sent (%s): no-op %s takes its nonce %s",
            swap_id,
            tx.purpose,
            leg,
            tx.chain,
            why,
            cancel.txid,
            tx.nonce,
            extra={"swap_id": swap_id, "chain": tx.chain, "txid": cancel.txid},
        )
        await adapter.broadcast(cancel)
        return True

    @staticmethod
    def _release(adapter: ChainAdapter, tx: SignedTx) -> None:
        if isinstance(adapter, Releasing):
            adapter.release(tx)

    async def _journaled(self, swap_id: str, leg: Leg, spend: Spend) -> SignedTxRecord | None:
        """The newest journaled version of this spend that is still live. A lock found here was handed to
        a node before (or may have been, before a crash): it is committed and only ever broadcast again."""
        txs = await self._store.signed_txs(swap_id=swap_id)
        candidates = [t for t in txs if t.leg == int(leg) and t.purpose == spend.value]
        live_ones = [t for t in candidates if t.status not in (TxStatus.REPLACED, TxStatus.DROPPED)]
        return live_ones[-1] if live_ones else None

    async def _journal(self, tx: SignedTx, swap_id: str, leg: Leg) -> None:
        async with self._store.write() as w:
            await w.record_signed_tx(tx, swap_id=swap_id, leg=int(leg))

    async def _broadcast(
        self, swap_id: str, leg: Leg, spend: Spend, adapter: ChainAdapter, tx: SignedTx
    ) -> None:
        await adapter.broadcast(tx)
        async with self._store.write() as w:
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
        at = self._clock()
        if spend is Spend.LOCK:
            htlc_id = tx.htlc_id
            if not htlc_id:
                raise RuntimeError(f"adapter {adapter.name} signed a lock without naming its HTLC id")
            await self._apply(swap_id, swap.LockBroadcast(at, leg, tx.txid, htlc_id))
        elif spend is Spend.CLAIM:
            await self._apply(swap_id, swap.ClaimBroadcast(at, leg, tx.txid))
        else:
            await self._apply(swap_id, swap.RefundBroadcast(at, leg, tx.txid))
