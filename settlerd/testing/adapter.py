"""``FakeChainAdapter``: a ``ChainAdapter`` on a ``FakeChain``, for the engine's tests and as a model.

It keeps the contract as the first-party adapters do, so the engine cannot tell it from them: ``build_*``
only signs (the chain sees nothing until ``broadcast``), broadcasting a known transaction again is harmless,
events come in scanner order with depth re-reports and Reorged undoing what left the chain, and the
long-lived work (scanning, rebroadcasting the journal) is in ``run``, which the owner runs and restarts;
``start`` creates no task. Timelocks are block heights: block ``h`` is mined at ``genesis + h * interval``.

The test plays a bad node through ``hang()`` (every node call waits until ``unhang()``) and
``fail_next(n)`` (the next ``n`` node calls raise ``FakeNodeError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from settlerd.adapters import (
    AdapterStore,
    ChainEvent,
    HtlcSpent,
    HtlcTerms,
    Purpose,
    SignedTx,
    TimeLeft,
    TimelockBounds,
)

from .chain import MAX_TIMELOCK, FakeChain, FakeTx
from .scanner import Scanner

ADDRESS = re.compile(r"0x[0-9a-f]{40}")
# The largest amount one HTLC may carry; anything above is a unit mistake.
MAX_AMOUNT = 2**96 - 1
# The fake node answers at once; the owner's loop still sleeps between polls when nothing changed.
DEFAULT_POLL_INTERVAL_S = 0.05


class FakeNodeError(ConnectionError):
    """The fake node did not answer (``fail_next``), as a refused connection or a timeout would."""


class FakeChainAdapter:
    def __init__(
        self,
        chain: FakeChain,
        account: str,
        store: AdapterStore | None = None,
        *,
        name: str | None = None,
        finality_depth: int = 2,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    ) -> None:
        self.chain = chain
        self.name = name or chain.name
        self.native_asset = chain.native_asset
        self.account = account
        self._store = store
        self._poll_interval_s = poll_interval_s
        self._queue: asyncio.Queue[ChainEvent] = asyncio.Queue()
        self.scanner = Scanner(chain, self.name, store, self._queue.put_nowait, finality_depth=finality_depth)
        self._wakeup = asyncio.Event()
        self._answering = asyncio.Event()
        self._answering.set()
        self._failures: list[Exception] = []
        self.node_calls = 0

    # a misbehaving node, for the test

    def hang(self) -> None:
        """Every node call from now on waits (the node accepts connections and never answers)."""
        self._answering.clear()

    def unhang(self) -> None:
        self._answering.set()

    def fail_next(self, n: int = 1, error: Exception | None = None) -> None:
        """The next ``n`` node calls raise ``error`` (a FakeNodeError by default)."""
        self._failures.extend([error or FakeNodeError(f"{self.name}: node unreachable")] * n)

    async def _node(self) -> None:
        """Every call that would reach a real node goes through here."""
        self.node_calls += 1
        await self._answering.wait()
        if self._failures:
            raise self._failures.pop(0)

    # lifecycle

    async def start(self) -> None:
        await self._node()
        await self.scanner.resume()
        self.chain.subscribe(self._wakeup)

    async def run(self) -> None:
        """Scan on every change of the chain (at least every poll interval) and rebroadcast what the
        journal holds unconfirmed; a node failure ends it, for the owner to restart."""
        while True:
            self._wakeup.clear()
            await self.poll()
            await self.rebroadcast()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
            # arrives as the wakeup fires, and this loop would outlive the task that owns it.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval_s):
                    await self._wakeup.wait()

    async def close(self) -> None:
        self.chain.unsubscribe(self._wakeup)

    async def poll(self) -> None:
        """One scan of the chain: for tests that drive the scanner step by step, then ``take_events``."""
        await self._node()
        await self.scanner.poll()

    async def rebroadcast(self) -> None:
        """Send again the journaled transactions the node lost (evicted, or dropped by a reorg), each only
        once the engine sent it."""
        if self._store is None:
            return
        journal = await self._store.unconfirmed_txs(self.name)
        unsent = await self._store.unsent(self.name)  # the engine's to send first (S1, S2)
        for tx in journal:
            if self.chain.find_tx(tx.txid) is None and tx.txid not in unsent:
                with contextlib.suppress(Exception):  # not valid (yet): the engine settles it or retries
                    await self.broadcast(tx)

    def take_events(self) -> list[ChainEvent]:
        found = []
        while not self._queue.empty():
            found.append(self._queue.get_nowait())
        return found

    async def events(self) -> AsyncIterator[ChainEvent]:
        while True:
            yield await self._queue.get()

    async def sync_status(self) -> tuple[int, int]:
        await self._node()
        scanned = self.scanner.height
        return (-1 if scanned is None else scanned), self.chain.height

    # time: block h comes exactly at genesis + h * interval, so both bounds are one time, for sure

    async def timelock_for(self, deadline: datetime) -> int:
        return max(1, -(-(deadline - self.chain.genesis_time) // self.chain.block_interval))

    async def bounds_of(self, timelock: int) -> TimelockBounds:
        # A refund enters the mempool once block ``timelock`` is mined, and the next block holds it.
        opens = self.chain.block_time(timelock)
        return TimelockBounds(earliest=opens, latest=opens, probability=0.0)

    async def time_left(self, timelock: int) -> TimeLeft:
        await self._node()
        left = max(timedelta(0), self.chain.block_time(timelock) - self.chain.time)
        return TimeLeft(earliest=left, latest=left, probability=0.0)

    # identity and funds

    def check_terms(self, terms: HtlcTerms) -> list[str]:
        problems = [
            f"{role}: {party!r} is not an address of {self.name} (0x and 40 lower-case hex digits)"
            for role, party in (("recipient", terms.recipient), ("sender", terms.sender))
            if not ADDRESS.fullmatch(party)
        ]
        if terms.asset not in self.chain.assets:
            problems.append(
                f"asset: {self.name} carries no {terms.asset!r} (it carries {sorted(self.chain.assets)})"
            )
        if not 0 < terms.amount <= MAX_AMOUNT:
            problems.append(f"amount: {terms.amount} is outside 1..{MAX_AMOUNT}")
        if not 0 < terms.timelock < MAX_TIMELOCK:
            problems.append(f"timelock: {terms.timelock} is not a block height below {MAX_TIMELOCK}")
        return problems

    def canonical_asset(self, asset: str) -> str:
        for known in self.chain.assets:
            if known.upper() == asset.upper():
                return known
        raise ValueError(f"{asset!r} is not an asset of {self.name}: it carries {sorted(self.chain.assets)}")

    def party(self, hashlock: bytes) -> str:
        return self.account

    async def receive_address(self) -> str:
        return self.account

    async def spendable(self, asset: str) -> int:
        await self._node()
        return self.chain.pending_balance(self.account, asset)

    # scanning

    def watch(self, terms: HtlcTerms) -> None:
        self.scanner.watch(terms)

    def unwatch(self, hashlock: bytes) -> None:
        self.scanner.unwatch(hashlock)

    # signing: nothing reaches the chain before broadcast

    async def build_lock(self, terms: HtlcTerms) -> SignedTx:
        await self._node()
        tx = FakeTx(
            "lock", self.account, self.chain.fee_rate, self.chain.next_serial(), asset=terms.asset,
            amount=terms.amount, hashlock=terms.hashlock.hex(), recipient=terms.recipient,
            sender=terms.sender, timelock=terms.timelock,
        )  # fmt: skip
        return self._signed(tx, htlc_id=f"{tx.txid}:0")

    async def build_claim(self, terms: HtlcTerms, htlc_id: str, preimage: bytes) -> SignedTx:
        if hashlib.sha256(preimage).digest() != terms.hashlock:
            raise ValueError("the preimage does not match the hashlock")
        await self._spent_already(htlc_id)
        tx = FakeTx(
            "claim", self.account, self.chain.fee_rate, self.chain.next_serial(), htlc_id=htlc_id,
            preimage=preimage.hex(),
        )  # fmt: skip
        return self._signed(tx, htlc_id=htlc_id)

    async def build_refund(self, terms: HtlcTerms, htlc_id: str) -> SignedTx:
        await self._spent_already(htlc_id)
        tx = FakeTx("refund", self.account, self.chain.fee_rate, self.chain.next_serial(), htlc_id=htlc_id)
        return self._signed(tx, htlc_id=htlc_id)

    async def _spent_already(self, htlc_id: str) -> None:
        await self._node()
        spend = self.scanner.find_spend(htlc_id)
        if spend is not None:
            raise HtlcSpent(f"{self.name}: HTLC {htlc_id} was already {spend.fact} in {spend.txid}")

    def _signed(self, tx: FakeTx, *, htlc_id: str) -> SignedTx:
        return SignedTx(self.name, tx.txid, tx.encode(), Purpose(tx.kind), htlc_id, meta={"fee": tx.fee})

    async def broadcast(self, tx: SignedTx) -> str:
        await self._node()
        self.chain.submit(FakeTx.decode(tx.raw))
        return tx.txid
