"""The tests every ``ChainAdapter`` must pass, run by each adapter package against its own node.

Subclass ``AdapterConformance`` in a test module (its name must start with ``Test``), give the class
attributes and implement the hooks (``new_adapter``, ``mine``, ``reorg``, ``advance``, ``node_height``;
``fund`` and ``chain_now`` when the defaults do not fit), and pytest collects every ``test_*`` below for
your adapter. Hooks reach the node fixture through the class: an autouse class-scoped fixture of the
subclass puts it there::

    class TestMyChainConformance(AdapterConformance):
        amount = 10_000

        @pytest.fixture(scope="class", autouse=True)
        @classmethod
        def node(cls, my_node): cls.my_node = my_node

        async def new_adapter(self, role, stack): ...  # built on self.my_node, funded, not started
        async def mine(self, blocks): ...
        async def reorg(self, depth): ...
        async def advance(self, by): ...
        async def node_height(self): ...

The suite owns the adapters' lifecycle as the daemon does: ``start()``, then ``run()`` as a task it
cancels before ``close()``. Two adapters with their own wallets on one node play the sender and the
recipient of each HTLC. Every wait is bounded by ``wait_s``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import ClassVar, TypeVar

import pytest

from settlerd.adapters import (
    ChainAdapter,
    ChainEvent,
    Claimed,
    HtlcEvent,
    HtlcFact,
    HtlcTerms,
    Locked,
    Purpose,
    Refunded,
    Reorged,
    SignedTx,
    Tip,
)

from . import events

LONG = timedelta(hours=2)  # a timelock no test reaches
SHORT = timedelta(minutes=30)  # a timelock the refund test reaches by ``advance``
# How many times the refund test moves the chain on before a refund must be accepted: the adapters'
# estimates are conservative (early), so the timelock may need a block or a few seconds more.
REFUND_ATTEMPTS = 10
# Long enough for an HTTP client's transient writer task to end after start() returned.
START_SETTLE_S = 0.2

E = TypeVar("E", bound=HtlcEvent)
T = TypeVar("T")


def _about(event: ChainEvent, terms: HtlcTerms) -> bool:
    return isinstance(event, HtlcEvent) and event.hashlock == terms.hashlock


@dataclass
class Feed:
    """One adapter's events in the order they came; each ``expect`` takes the earliest match not yet taken."""

    adapter: ChainAdapter
    wait_s: float
    seen: list[ChainEvent] = field(default_factory=list)
    _taken: set[int] = field(default_factory=set)
    _stream: AsyncIterator[ChainEvent] | None = None

    async def expect(self, kind: type[E], hashlock: bytes, where: Callable[[E], bool] = lambda e: True) -> E:
        """The first event of ``kind`` for ``hashlock`` satisfying ``where``, in the scanner's order."""
        event = self.seen[await self._index(kind, lambda e: e.hashlock == hashlock and where(e))]
        assert isinstance(event, kind)
        return event

    async def through(self, height: int) -> list[ChainEvent]:
        """Every event the scanner reported before its first Tip at ``height`` or above."""
        return self.seen[: await self._index(Tip, lambda e: e.height >= height)]

    async def _index(self, kind: type[T], where: Callable[[T], bool]) -> int:
        if self._stream is None:
            self._stream = aiter(self.adapter.events())
        i = 0
        async with asyncio.timeout(self.wait_s):
            while True:
                while i >= len(self.seen):
                    self.seen.append(await anext(self._stream))
                event = self.seen[i]
                if isinstance(event, kind) and i not in self._taken and where(event):
                    self._taken.add(i)
                    return i
                i += 1


@dataclass
class Party:
    adapter: ChainAdapter
    feed: Feed
    task: asyncio.Task[None]


class AdapterConformance(abc.ABC):
    """Base class of an adapter's conformance tests; see the module's documentation. A subclass that
    leaves out a hook fails when pytest builds it, naming the hook."""

    amount: ClassVar[int]  # base units of ``asset`` a lock moves; each wallet must hold several
    asset: ClassVar[str | None] = None  # the asset locked, the chain's native one by default
    finality_depth: ClassVar[int] = 2  # what the adapters were built with
    wait_s: ClassVar[float] = 30.0  # the longest any event may take to be reported

    # hooks

    @abc.abstractmethod
    async def new_adapter(self, role: str, stack: contextlib.AsyncExitStack) -> ChainAdapter:
        """A new adapter on the test node with a wallet of its own, funded and not started; ``stack``
        takes whatever must be released after it is closed (a store, a temporary directory)."""

    @abc.abstractmethod
    async def mine(self, blocks: int) -> None:
        """Mine ``blocks`` blocks, including what the mempool holds."""

    @abc.abstractmethod
    async def reorg(self, depth: int) -> None:
        """Replace the last ``depth`` blocks by a longer branch."""

    @abc.abstractmethod
    async def advance(self, by: timedelta) -> None:
        """Move the chain's time on by at least ``by`` (blocks on a height-locked chain), with a new block."""

    async def fund(self, adapter: ChainAdapter) -> None:  # noqa: B027 (optional: nothing to do by default)
        """Fund a started adapter's wallet, for an adapter that must be started to name its address;
        ``new_adapter`` may fund it instead. The suite then waits for the scanner to reach the node's tip."""

    @abc.abstractmethod
    async def node_height(self) -> int:
        """The node's best block height."""

    async def chain_now(self) -> datetime:
        """The time the adapters' timelock conversions count from: wall-clock by default."""
        return datetime.now(UTC)

    # fixtures

    @pytest.fixture(scope="class")
    @classmethod
    async def parties(cls) -> AsyncIterator[tuple[Party, Party]]:
        """A sender and a recipient for every test of the class: wallets are funded once."""
        suite = cls()
        async with contextlib.AsyncExitStack() as stack:
            sender = await suite._started("sender", stack)
            recipient = await suite._started("recipient", stack)
            yield sender, recipient

    async def _started(self, role: str, stack: contextlib.AsyncExitStack) -> Party:
        adapter = await self.new_adapter(role, stack)
        stack.push_async_callback(adapter.close)
        await adapter.start()
        task = asyncio.create_task(adapter.run(), name=f"conformance-{role}-{adapter.name}")
        stack.push_async_callback(_cancel, task)
        party = Party(adapter, Feed(adapter, self.wait_s), task)
        await self.fund(adapter)
        await self.mined(party)
        return party

    # helpers

    async def terms(
        self, sender: Party, recipient: Party, *, within: timedelta = LONG
    ) -> tuple[HtlcTerms, bytes]:
        secret = os.urandom(32)
        hashlock = hashlib.sha256(secret).digest()
        s = sender.adapter
        terms = HtlcTerms(
            chain=s.name,
            asset=self.asset or s.native_asset,
            amount=self.amount,
            hashlock=hashlock,
            recipient=recipient.adapter.party(hashlock),
            sender=s.party(hashlock),
            timelock=await s.timelock_for(await self.chain_now() + within),
        )
        return terms, secret

    async def locked(
        self, sender: Party, recipient: Party, *, within: timedelta = LONG
    ) -> tuple[HtlcTerms, bytes, SignedTx, Locked]:
        """A lock from sender to recipient, broadcast, mined and seen by both at its first confirmation."""
        terms, secret = await self.terms(sender, recipient, within=within)
        for party in (sender, recipient):
            party.adapter.watch(terms)
        tx = await sender.adapter.build_lock(terms)
        await sender.adapter.broadcast(tx)
        await self.mine(1)
        seen = await recipient.feed.expect(Locked, terms.hashlock, events.in_block)
        await sender.feed.expect(Locked, terms.hashlock, events.in_block)
        return terms, secret, tx, seen

    async def mined(self, party: Party, blocks: int = 1) -> list[ChainEvent]:
        """Mine ``blocks`` and return every event the party's scanner reported up to the new tip."""
        await self.mine(blocks)
        return await party.feed.through(await self.node_height())

    # the contract

    async def test_a_lock_is_seen_with_exact_terms_and_growing_depth(
        self, parties: tuple[Party, Party]
    ) -> None:
        sender, recipient = parties
        terms, _ = await self.terms(sender, recipient)
        assert sender.adapter.check_terms(terms) == [] and recipient.adapter.check_terms(terms) == []
        recipient.adapter.watch(terms)
        tx = await sender.adapter.build_lock(terms)
        assert tx.purpose is Purpose.LOCK and tx.htlc_id, "a lock names the HTLC it creates"

        # Signing is not broadcasting: a block later, nothing is locked.
        before = await self.mined(recipient)
        assert not [e for e in before if _about(e, terms)], "build_lock must only sign"

        await sender.adapter.broadcast(tx)
        await self.mine(1)
        first = await recipient.feed.expect(Locked, terms.hashlock, events.in_block)
        assert (first.htlc_id, first.txid) == (tx.htlc_id, tx.txid)
        assert first.found == terms and first.amount == terms.amount
        await self.mine(self.finality_depth)
        depths = [first.confirmations]
        while depths[-1] < self.finality_depth:
            again = await recipient.feed.expect(Locked, terms.hashlock)
            assert again.htlc_id == first.htlc_id and again.found == terms
            depths.append(again.confirmations)
        assert depths == sorted(set(depths)), f"depths are re-reported as they grow: {depths}"

    async def test_a_claim_reveals_the_preimage(self, parties: tuple[Party, Party]) -> None:
        sender, recipient = parties
        terms, secret, _, lock = await self.locked(sender, recipient)
        claim = await recipient.adapter.build_claim(terms, lock.htlc_id, secret)
        assert claim.purpose is Purpose.CLAIM
        assert await recipient.adapter.broadcast(claim) == claim.txid
        await self.mine(1)
        for party in (sender, recipient):
            seen = await party.feed.expect(Claimed, terms.hashlock)
            assert (seen.htlc_id, seen.txid, seen.preimage) == (lock.htlc_id, claim.txid, secret)

    async def test_a_refund_is_refused_before_the_timelock_and_accepted_after(
        self, parties: tuple[Party, Party]
    ) -> None:
        sender, recipient = parties
        terms, _, _, lock = await self.locked(sender, recipient, within=SHORT)
        assert (await sender.adapter.time_left(terms.timelock)).earliest > timedelta(0)
        with pytest.raises(Exception) as refused:
            await sender.adapter.broadcast(await sender.adapter.build_refund(terms, lock.htlc_id))
        assert not isinstance(refused.value, AssertionError)

        await self.advance((await sender.adapter.bounds_of(terms.timelock)).latest - await self.chain_now())
        refund = None
        for _ in range(REFUND_ATTEMPTS):
            with contextlib.suppress(Exception):
                refund = await sender.adapter.build_refund(terms, lock.htlc_id)
                await sender.adapter.broadcast(refund)
                break
            await self.advance(timedelta(minutes=1))
        assert refund is not None, "a refund must be accepted once the timelock has passed"
        await self.mine(1)
        txid = refund.txid
        for party in (sender, recipient):
            seen = await party.feed.expect(Refunded, terms.hashlock, lambda e: e.txid == txid)
            assert seen.htlc_id == lock.htlc_id

    async def test_broadcasting_twice_is_harmless(self, parties: tuple[Party, Party]) -> None:
        sender, recipient = parties
        terms, secret = await self.terms(sender, recipient)
        recipient.adapter.watch(terms)
        tx = await sender.adapter.build_lock(terms)
        assert await sender.adapter.broadcast(tx) == tx.txid
        assert await sender.adapter.broadcast(tx) == tx.txid
        await self.mine(1)
        lock = await recipient.feed.expect(Locked, terms.hashlock, events.in_block)
        await self.mine(1)
        assert await sender.adapter.broadcast(tx) == tx.txid, "a mined transaction again is harmless"
        claim = await recipient.adapter.build_claim(terms, lock.htlc_id, secret)
        for _ in range(2):
            assert await recipient.adapter.broadcast(claim) == claim.txid
        seen = await self.mined(recipient)
        locks = {e.htlc_id for e in seen if isinstance(e, Locked) and _about(e, terms)}
        assert locks == {lock.htlc_id}, "one HTLC, however often its lock was broadcast"
        claimed = await recipient.feed.expect(Claimed, terms.hashlock)
        assert claimed.txid == claim.txid

    async def test_a_reorg_undoes_a_lock(self, parties: tuple[Party, Party]) -> None:
        sender, recipient = parties
        terms, _, tx, lock = await self.locked(sender, recipient)
        await self.reorg(await self.node_height() - lock.height + 1)
        undone = await recipient.feed.expect(Reorged, terms.hashlock)
        assert (undone.undoes, undone.htlc_id, undone.txid) == (HtlcFact.LOCKED, lock.htlc_id, tx.txid)
        # A chain that mines the lock again on the new branch reports it again, from another block.
        reported = await self.mined(recipient)
        after = reported[next(i for i, e in enumerate(reported) if e is undone) + 1 :]
        for event in after:
            if isinstance(event, Locked) and _about(event, terms):
                assert event.block_hash != lock.block_hash, "a lock undone by a reorg came back unchanged"

    async def test_only_watched_terms_are_reported(self, parties: tuple[Party, Party]) -> None:
        sender, recipient = parties
        unwatched, _ = await self.terms(sender, recipient)
        recipient.adapter.watch(unwatched)
        recipient.adapter.unwatch(unwatched.hashlock)
        short, _ = await self.terms(sender, recipient)
        recipient.adapter.watch(short)  # the lock below pays less than these terms ask
        for terms, amount in ((unwatched, self.amount), (short, self.amount - 1)):
            await sender.adapter.broadcast(await sender.adapter.build_lock(replace(terms, amount=amount)))
        reported = await self.mined(recipient)
        assert not [e for e in reported if _about(e, unwatched)], "an unwatched HTLC was reported"
        for event in reported:
            if _about(event, short):  # reported with what it pays, or not at all
                assert isinstance(event, Locked) and event.found.amount == self.amount - 1, event

    async def test_check_terms_refuses_malformed_terms(self, parties: tuple[Party, Party]) -> None:
        sender, recipient = parties
        good, _ = await self.terms(sender, recipient)
        adapter = recipient.adapter
        assert adapter.check_terms(good) == []
        cases = {
            "recipient": replace(good, recipient="not-a-party"),
            "sender": replace(good, sender=""),
            "asset": replace(good, asset="NO-SUCH-ASSET"),
            "amount": replace(good, amount=0),
            "timelock": replace(good, timelock=-1),
        }
        for field_name, terms in cases.items():
            problems = adapter.check_terms(terms)
            assert problems and all(p.startswith(f"{field_name}:") for p in problems), (field_name, problems)
        assert [p for p in adapter.check_terms(replace(good, timelock=2**64)) if p.startswith("timelock:")]

    async def test_timelock_conversions_are_monotone_and_conservative(
        self, parties: tuple[Party, Party]
    ) -> None:
        adapter = parties[0].adapter
        now = await self.chain_now()
        deadlines = [now + timedelta(minutes=m) for m in (10, 11, 60, 600, 6000)]
        timelocks = [await adapter.timelock_for(d) for d in deadlines]
        assert timelocks == sorted(timelocks) and timelocks[0] < timelocks[-1]
        bounds = [await adapter.bounds_of(t) for t in timelocks]
        for deadline, bound in zip(deadlines, bounds, strict=True):
            assert bound.earliest >= deadline, "a refund may never open before its deadline"
            assert bound.latest >= bound.earliest and 0 <= bound.probability < 1
        for attr in ("earliest", "latest"):
            opens = [getattr(b, attr) for b in bounds]
            assert opens == sorted(opens), attr
        left = [await adapter.time_left(t) for t in timelocks]
        assert [t.earliest for t in left] == sorted(t.earliest for t in left) and left[
            0
        ].earliest > timedelta(0)
        assert all(t.latest >= t.earliest for t in left)
        # Converted and read back by the same tip, an hour stays at least an hour (less the test's own time).
        assert left[2].earliest >= timedelta(minutes=59), left[2]

    async def test_time_left_follows_the_chain(self, parties: tuple[Party, Party]) -> None:
        adapter = parties[0].adapter
        timelock = await adapter.timelock_for(await self.chain_now() + LONG)
        before = await adapter.time_left(timelock)
        await self.advance(timedelta(minutes=30))
        after = await adapter.time_left(timelock)
        assert after.earliest < before.earliest and after.latest < before.latest, (before, after)

    async def test_lifecycle_start_run_close(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            never_started = await self.new_adapter("never-started", stack)
            await never_started.close()  # closing what never started is allowed

            adapter = await self.new_adapter("lifecycle", stack)
            tasks = asyncio.all_tasks()
            await adapter.start()
            # An HTTP client may leave a request's writer task finishing for a moment; a long-lived loop
            # started by start() would still be running after it.
            await asyncio.sleep(START_SETTLE_S)
            started = {t for t in asyncio.all_tasks() - tasks if not t.done()}
            assert not started, f"start() creates no task: the owner runs run() (found {started})"
            feed = Feed(adapter, self.wait_s)
            for _ in range(2):  # the owner restarts run() after it ended; it picks up where it was
                task = asyncio.create_task(adapter.run(), name="conformance-lifecycle")
                await self.mine(1)
                await feed.through(await self.node_height())
                assert not task.done(), "run() runs until cancelled"
                await _cancel(task)
                assert task.cancelled(), "run() lets its cancellation out"
            await adapter.close()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
