"""The engine: drives every live swap through the state machine and carries out what it asks.

Each input (a chain event, a timer tick, a trade-capture request, the result of an action) is one
``step``; the new state and its event are written in one transaction (S6) before any action runs, and
every signed transaction is journaled before it is broadcast (S4). Actions go to their chain's worker
(``workers``): following a chain and ticking never wait for a node to sign or broadcast, so a hung node
delays only its own chain's spends. Actions that could not finish are found again from the state on the
next tick, so a failed broadcast or a crash is retried, never lost.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from settlerd import swap
from settlerd.adapters import (
    ChainAdapter,
    ChainEvent,
    Claimed,
    HtlcEvent,
    HtlcFact,
    Locked,
    Purpose,
    Refunded,
    Reorged,
)
from settlerd.store import Store, TxStatus
from settlerd.store.rows import UNCONFIRMED
from settlerd.swap import Leg, Spend, SwapState
from settlerd.swap.timers import next_deadline

from . import records
from .executor import Executor
from .live_checks import LiveChecks
from .records import LiveSwap
from .risk import Limits, RiskCheck
from .workers import ChainWorker, Job

log = logging.getLogger("settlerd.engine")

# How often deadlines are re-evaluated and unfinished actions retried without a chain event.
DEFAULT_TICK = timedelta(seconds=5)

# A tick or a restore hands the loop back after this much work, so the API and the chain followers
# answer within about this long however many swaps come due at once.
YIELD_EVERY_S = 0.005

_UNDONE = {
    HtlcFact.LOCKED: Spend.LOCK,
    HtlcFact.CLAIMED: Spend.CLAIM,
    HtlcFact.REFUNDED: Spend.REFUND,
}


def _chain_of(state: SwapState, event: swap.Event) -> str | None:
    leg = getattr(event, "leg", None)
    return state.terms.leg(leg).chain if isinstance(leg, Leg) else None


def utcnow() -> datetime:
    return datetime.now(UTC)


def _unfinished(state: SwapState) -> bool:
    """Whether the swap asked for a spend that was not sent yet: the tick queues it again."""
    for leg in (Leg.ONE, Leg.TWO):
        facts = state.leg(leg)
        if (
            (facts.lock_requested and not facts.lock_sent)
            or (facts.claim_requested and not facts.claim_sent)
            or (facts.refund_requested and not facts.refund_sent)
        ):
            return True
    return False


class UnknownSwap(LookupError):
    pass


class Engine:
    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, ChainAdapter],
        *,
        limits: Limits | None = None,
        tick: timedelta = DEFAULT_TICK,
        clock: Callable[[], datetime] = utcnow,
        wakeups: Sequence[asyncio.Event] = (),
    ) -> None:
        self.store = store
        self.adapters = dict(adapters)
        self.clock = clock
        self._tick = tick
        self._live: dict[str, LiveSwap] = {}
        self.unresumable: dict[str, str] = {}  # swap id -> why its log did not replay
        self._locks: dict[str, asyncio.Lock] = {}
        self._index: dict[tuple[str, bytes], list[tuple[str, Leg]]] = {}
        # The deadline heap: (moment, swap id) for each swap's next deadline (``swap.timers``); an entry
        # whose moment is no longer the one in ``_due`` is stale and skipped when it comes up.
        self._timers: list[tuple[datetime, str]] = []
        self._due: dict[str, datetime] = {}
        self._unfinished: set[str] = set()  # swaps with an action asked for and not yet sent
        self._wakeups = tuple(wakeups)  # set after every logged change: they wake the publishers
        live_checks = LiveChecks(self.adapters, clock, self._live)
        self._risk = RiskCheck(self._live, self.adapters, limits)
        self.executor = Executor(store, self.adapters, clock, self._live, self.apply, self._risk, live_checks)
        self.workers = {name: ChainWorker(name, self.executor.carry_out) for name in self.adapters}

    # Reading

    def live(self, swap_id: str) -> LiveSwap:
        try:
            return self._live[swap_id]
        except KeyError:
            raise UnknownSwap(f"no live swap {swap_id}") from None

    def live_ids(self) -> list[str]:
        return list(self._live)

    # Start-up

    async def resume(self) -> int:
        """Restore every live swap and retry what was unfinished (adapters already started)."""
        count = await self.restore()
        await self.retry_unfinished()
        return count

    async def retry_unfinished(self) -> None:
        """Queue what every live swap asked for and was not yet sent; the workers start with ``run``."""
        for swap_id in sorted(self._unfinished, key=self._claim_deadline):
            self._retry(swap_id)

    async def restore(self) -> int:
        """Rebuild every live swap from the log and watch its legs again. Touches no chain: adapters may
        be started only afterwards, so their catch-up already matches what these swaps watch."""
        # Python's full garbage collections walk every object alive: with 100,000 swaps loaded each
        # one held the loop for seconds. What restore builds lives as long as its swaps, so it is built
        # with the collector paused and then frozen out of its reach (reference counting still frees
        # it); new swaps are collected as usual.
        collecting = gc.isenabled()
        gc.disable()
        try:
            await self._restore()
        finally:
            if collecting:
                gc.enable()
            gc.freeze()
        return len(self._live)

    async def _restore(self) -> None:
        logs = await self.store.live_swap_logs(terminal=[s.value for s in swap.TERMINAL])
        logs.reverse()  # taken from the end, so each log is freed as its swap is rebuilt, not all at once
        started = time.monotonic()
        while logs:
            row, secret, events = logs.pop()
            if time.monotonic() - started > YIELD_EVERY_S:
                await asyncio.sleep(0)
                started = time.monotonic()
            try:
                live = records.rebuild(row, secret, events)
                self._adopt(live)
            except (swap.SwapError, KeyError, ValueError) as exc:
                # One swap whose log no longer replays must not stop every other swap's claims and
                # refunds: it is left out, named, and keeps the daemon not ready until fixed.
                self.unresumable[row.id] = str(exc)
                log.error(
                    "swap %s cannot be resumed from its log: %s", row.id, exc, extra={"swap_id": row.id}
                )
                self._forget(row.id)

    def _adopt(self, live: LiveSwap) -> None:
        state = live.state
        self._live[state.swap_id] = live
        self._locks.setdefault(state.swap_id, asyncio.Lock())
        self._reschedule(live)
        if state.accepted:
            for leg in (Leg.ONE, Leg.TWO):
                self._watch(state, leg)

    def _reschedule(self, live: LiveSwap) -> None:
        """After every step: the swap's next deadline in the heap, and whether it has work to retry."""
        state = live.state
        swap_id = state.swap_id
        if _unfinished(state):
            self._unfinished.add(swap_id)
        else:
            self._unfinished.discard(swap_id)
        due = next_deadline(state)
        if due is None:
            self._due.pop(swap_id, None)
        elif self._due.get(swap_id) != due:
            self._due[swap_id] = due
            heapq.heappush(self._timers, (due, swap_id))

    def _forget(self, swap_id: str) -> None:
        self._live.pop(swap_id, None)
        self._locks.pop(swap_id, None)
        self._due.pop(swap_id, None)
        self._unfinished.discard(swap_id)

    def due_swaps(self, now: datetime) -> list[str]:
        """Take every swap whose next deadline has come from the heap (stale entries are dropped)."""
        due: list[str] = []
        while self._timers and self._timers[0][0] <= now:
            moment, swap_id = heapq.heappop(self._timers)
            if self._due.get(swap_id) == moment:
                del self._due[swap_id]
                due.append(swap_id)
        return due

    def _watch(self, state: SwapState, leg: Leg) -> None:
        terms = state.terms.leg(leg)
        targets = self._index.setdefault((terms.chain, terms.hashlock), [])
        if (state.swap_id, leg) not in targets:
            targets.append((state.swap_id, leg))
        self.adapters[terms.chain].watch(records.htlc_terms(state, leg))

    def _unwatch(self, state: SwapState, leg: Leg) -> None:
        terms = state.terms.leg(leg)
        key = (terms.chain, terms.hashlock)
        targets = [t for t in self._index.get(key, []) if t != (state.swap_id, leg)]
        if targets:
            self._index[key] = targets
        else:
            self._index.pop(key, None)
            self.adapters[terms.chain].unwatch(terms.hashlock)

    # Creating swaps (trade capture calls these)

    async def add(self, live: LiveSwap, initial: swap.SwapTerms, *, extra: Mapping[str, Any]) -> None:
        """Persist a new swap in ``offered`` with its creation event; ``extra`` keeps its documents."""
        state = live.state
        async with self.store.write() as tx:
            await tx.insert_swap(
                swap_id=state.swap_id,
                role=state.role.value,
                status=state.status.value,
                counterparty=live.counterparty,
                terms={**records.swap_document(state, initial), **extra},
                secret=state.secret,
                now=state.now,
            )
            for row in records.leg_rows(live):
                await tx.upsert_leg(row)
            await tx.append_event(state.swap_id, "created", state.status.value, records.created_payload(live))
        self._adopt(live)
        self._changed()

    def _changed(self) -> None:
        for wakeup in self._wakeups:
            wakeup.set()

    # Stepping

    async def apply(self, swap_id: str, event: swap.Event, *, txid: str | None = None) -> swap.Step:
        """Step one swap; persist the new state with its event, then carry out the actions."""
        live = self.live(swap_id)
        async with self._locks[swap_id]:
            result = swap.step(live.state, event)
            # A step that only moved the swap's clock is not logged: replay takes time from later events.
            if replace(result.state, now=live.state.now) == live.state and not result.actions:
                live.state = result.state
                self._reschedule(live)
                return result
            settled = await self._settled_txs(swap_id, event, txid, result.state)
            async with self.store.write() as tx:
                for settled_txid, status in settled:
                    await tx.mark_tx(settled_txid, status)
                after = live.after(result.state, event, txid)
                await tx.update_swap(swap_id, status=result.state.status.value)
                # Only the legs this step changed: the others are in the store as the last step left them.
                for row, stored in zip(records.leg_rows(after), records.leg_rows(live), strict=True):
                    if row != stored:
                        await tx.upsert_leg(row)
                await tx.append_event(
                    swap_id,
                    event.kind.value,
                    result.state.status.value,
                    # The time the swap's clock actually reached: a replay then decides as live did.
                    records.log_payload(replace(event, at=result.state.now), result, txid),
                )
            live.state, live.txids = after.state, after.txids
            self._reschedule(live)
        self._changed()
        if result.change is not None:
            log.info(
                "swap %s: %s -> %s on %s%s",
                swap_id,
                result.change.source,
                result.change.target,
                event.kind,
                " (reorg)" if result.change.reorg else "",
                extra={"swap_id": swap_id, "chain": _chain_of(live.state, event), "txid": txid},
            )
        self._act(live, result.actions)
        if swap.is_terminal(live.state.status):
            self._forget(swap_id)
        return result

    async def _settled_txs(
        self, swap_id: str, event: swap.Event, txid: str | None, state: SwapState
    ) -> list[tuple[str, TxStatus]]:
        """Journal entries this step settles, so rebroadcasting stops: a spend of ours that reached
        finality is confirmed (its other versions replaced); a swap that ended drops what is left."""
        spend = records.spend_of(event)
        seen = event if isinstance(event, swap.LockSeen | swap.ClaimSeen | swap.RefundSeen) else None
        final = seen is not None and spend is not None and state.is_final(seen.leg, spend)
        ended = swap.is_terminal(state.status)
        if not (final or ended):
            return []
        txid = txid or getattr(event, "txid", None)
        purpose = Purpose(spend.value) if spend is not None else None
        updates: list[tuple[str, TxStatus]] = []
        for record in await self.store.signed_txs(swap_id=swap_id, statuses=UNCONFIRMED):
            if final and seen is not None and record.leg == int(seen.leg) and record.purpose == purpose:
                confirmed = record.txid == txid
                updates.append((record.txid, TxStatus.CONFIRMED if confirmed else TxStatus.REPLACED))
            elif ended and record.nonce is None:
                # A transaction holding an account nonce stays with its adapter until that nonce is
                # used: dropping it here would leave a gap that blocks every later transaction.
                updates.append((record.txid, TxStatus.DROPPED))
        return updates

    def _act(self, live: LiveSwap, actions: tuple[swap.Action, ...]) -> None:
        for action in actions:
            match action:
                case swap.Watch(leg=leg):
                    self._watch(live.state, leg)
                case swap.Unwatch(leg=leg):
                    self._unwatch(live.state, leg)
                case swap.Alert(code=code, message=message):
                    log.warning("%s (%s)", message, code, extra={"swap_id": live.state.swap_id})
                case swap.LockLeg(leg=leg):
                    self._risk.asked(live.state.swap_id)
                    self._submit(live.state, leg, Spend.LOCK)
                case swap.ClaimLeg(leg=leg):
                    self._submit(live.state, leg, Spend.CLAIM)
                case swap.RefundLeg(leg=leg):
                    self._submit(live.state, leg, Spend.REFUND)

    def _submit(self, state: SwapState, leg: Leg, spend: Spend) -> None:
        terms = state.terms.leg(leg)
        self.workers[terms.chain].submit(Job(state.swap_id, leg, spend, terms.deadline))

    def _retry(self, swap_id: str) -> None:
        """Whatever the state asked for and was not yet sent: queue it (again)."""
        live = self._live.get(swap_id)
        if live is None:
            return
        for leg in (Leg.ONE, Leg.TWO):
            facts = live.state.leg(leg)
            if facts.lock_requested and not facts.lock_sent:
                self._submit(live.state, leg, Spend.LOCK)
            if facts.claim_requested and not facts.claim_sent:
                self._submit(live.state, leg, Spend.CLAIM)
            if facts.refund_requested and not facts.refund_sent:
                self._submit(live.state, leg, Spend.REFUND)

    # Chain events and ticks

    async def on_chain_event(self, event: ChainEvent) -> None:
        if not isinstance(event, HtlcEvent):
            return  # a new tip: deadlines are looked at by the ticker
        for swap_id, leg in list(self._index.get((event.chain, event.hashlock), [])):
            if swap_id not in self._live:
                continue
            terms = self._live[swap_id].state.terms.leg(leg)
            if isinstance(event, Locked) and (event.found.recipient, event.found.sender) != (
                terms.recipient,
                terms.sender,
            ):
                continue  # both legs on one chain share the hashlock: a lock belongs to the leg it pays
            known = self._live[swap_id].state.leg(leg).htlc_id
            if not isinstance(event, Locked) and known is not None and known != event.htlc_id:
                continue  # a spend or reorg of the other leg's HTLC
            await self._guarded_apply(swap_id, self._translate(event, leg), txid=event.txid)

    def _translate(self, event: Locked | Claimed | Refunded | Reorged, leg: Leg) -> swap.Event:
        at, htlc_id = self.clock(), event.htlc_id
        match event:
            case Locked(found=terms):
                found = swap.terms.FoundHtlc(
                    chain=event.chain,
                    asset=terms.asset,
                    amount=event.amount,
                    hashlock=terms.hashlock,
                    recipient=terms.recipient,
                    timelock=terms.timelock,
                )
                return swap.LockSeen(at, leg, htlc_id, found, event.confirmations)
            case Claimed():
                return swap.ClaimSeen(at, leg, htlc_id, event.txid, event.preimage, event.confirmations)
            case Refunded():
                return swap.RefundSeen(at, leg, htlc_id, event.txid, event.confirmations)
            case Reorged():
                return swap.Reorged(at, leg, htlc_id, _UNDONE[event.undoes])

    async def tick(self) -> None:
        """Step the swaps whose next deadline has come and queue unfinished actions again.

        A swap whose deadline has not come would only move its clock (``swap.timers``): it is left
        alone, so a tick costs what came due, not what is live.
        """
        now = self.clock()
        due = set(self.due_swaps(now))
        started = time.monotonic()
        # S3: claims whose deadline is nearest are queued first; each chain's worker keeps that order.
        for swap_id in sorted(due | self._unfinished, key=self._claim_deadline):
            if time.monotonic() - started > YIELD_EVERY_S:
                await asyncio.sleep(0)
                started = time.monotonic()
            if (
                swap_id in due
                and swap_id in self._live
                and not await self._guarded_apply(swap_id, swap.Tick(now))
            ):
                self._due[swap_id] = now  # not stepped: due again on the next tick
                heapq.heappush(self._timers, (now, swap_id))
            self._retry(swap_id)

    async def _guarded_apply(self, swap_id: str, event: swap.Event, *, txid: str | None = None) -> bool:
        # One swap's failure (a defect, a store error) must not end the chain follower or the ticker
        # that every other swap's claims and refunds depend on; the next event or tick tries again.
        try:
            await self.apply(swap_id, event, txid=txid)
        except Exception:
            log.exception("swap %s: %s could not be applied; retrying on the next event", swap_id, event.kind,
                          extra={"swap_id": swap_id})  # fmt: skip
            return False
        return True

    def _claim_deadline(self, swap_id: str) -> datetime:
        live = self._live.get(swap_id)
        if live is None:
            return datetime.max.replace(tzinfo=UTC)
        state = live.state
        leg = state.role.counter_leg
        if state.secret is not None and not state.leg(leg).spent:
            return state.terms.leg(leg).deadline
        return datetime.max.replace(tzinfo=UTC)

    async def _follow(self, adapter: ChainAdapter) -> None:
        async for event in adapter.events():
            await self.on_chain_event(event)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self._tick.total_seconds())
            await self.tick()

    async def run(self) -> None:
        """Follow every chain, tick, and carry out each chain's actions in its worker, until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            for name, adapter in self.adapters.items():
                tasks.create_task(self._follow(adapter), name=f"engine-follow-{name}")
                tasks.create_task(self.workers[name].run(), name=f"engine-worker-{name}")
            tasks.create_task(self._ticker(), name="engine-ticker")
