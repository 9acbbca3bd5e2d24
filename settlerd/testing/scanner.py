"""The fake adapter's scanner: reads each new block of the fake chain once and matches it against what is
watched, the way the first-party scanners do.

Per poll, in this order: blocks that left the best chain are found by hash and every lock or spend reported
in them is undone (Reorged); hashlocks watched since the last poll are looked up in the blocks already
scanned; the new blocks are matched (Locked with the terms read from the chain, Claimed with the preimage,
Refunded); spends waiting in the mempool are reported at zero confirmations (a claim reveals the preimage
as soon as it is broadcast); events whose depth changed are reported again until final; then the Tip.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

from settlerd.adapters import AdapterStore, ChainEvent, Claimed, HtlcFound, HtlcTerms, Refunded

from . import events
from .chain import Block, FakeChain, FakeTx


@dataclass(slots=True)
class _Reported:
    event: HtlcFound
    final: bool


class Scanner:
    def __init__(
        self,
        chain: FakeChain,
        name: str,
        store: AdapterStore | None,
        emit: Callable[[ChainEvent], None],
        *,
        finality_depth: int,
    ) -> None:
        self._chain = chain
        self._name = name
        self._store = store
        self._emit = emit
        self._finality_depth = finality_depth
        self._watched: dict[bytes, list[HtlcTerms]] = {}
        self._ids: dict[str, bytes] = {}  # htlc id -> hashlock, for locks matching watched terms
        self._new: set[bytes] = set()
        self.height: int | None = None
        self._hashes: dict[int, str] = {}
        self._reported: list[_Reported] = []

    def watch(self, terms: HtlcTerms) -> None:
        watched = self._watched.setdefault(terms.hashlock, [])
        if terms not in watched:
            watched.append(terms)
        self._new.add(terms.hashlock)

    def unwatch(self, hashlock: bytes) -> None:
        self._watched.pop(hashlock, None)
        self._new.discard(hashlock)
        self._ids = {i: h for i, h in self._ids.items() if h != hashlock}
        self._reported = [r for r in self._reported if r.event.hashlock != hashlock]

    async def resume(self) -> None:
        """Pick up where the last run stopped (the stored tip and hashes), or at the chain's tip."""
        tip = await self._store.get_cursor(self._name, "scan:tip") if self._store else None
        if tip is not None and self._store is not None:
            self.height = int(tip)
            hashes = await self._store.get_cursor(self._name, "scan:hashes")
            self._hashes = {int(k): v for k, v in json.loads(hashes or "{}").items()}
        else:
            self.height = self._chain.height
            self._hashes = {self.height: self._chain.block(self.height).hash}

    async def poll(self) -> None:
        assert self.height is not None, "resume() first"
        chain = self._chain
        tip = chain.height
        fork = self._fork(tip)
        if fork != self.height:
            kept = []
            for r in self._reported:
                if r.event.block_hash is not None and r.event.height > fork:
                    self._emit(events.reorged(r.event))
                else:
                    kept.append(r)
            self._reported = kept
            self._hashes = {h: v for h, v in self._hashes.items() if h <= fork}
            self.height = fork
        if self._new:
            for height in range(0, self.height + 1):
                self._match(chain.block(height), tip, only=self._new)
            self._new.clear()
        for height in range(self.height + 1, tip + 1):
            block = chain.block(height)
            self._match(block, tip)
            self._hashes[height] = block.hash
        self._match_mempool(tip)
        self._report_depths(tip)
        if tip != self.height:
            self.height = tip
            if self._store is not None:
                await self._store.put_cursor(self._name, "scan:hashes", json.dumps(self._hashes))
                await self._store.put_cursor(self._name, "scan:tip", str(tip))
            self._emit(events.tip(self._name, tip, chain.block(tip).hash))

    def _fork(self, tip: int) -> int:
        """The highest scanned block still on the best chain (genesis never leaves it)."""
        assert self.height is not None
        height = self.height
        while height > 0:
            known = self._hashes.get(height)
            if height <= tip and (known is None or self._chain.block(height).hash == known):
                break
            height -= 1
        return height

    def _match(self, block: Block, tip: int, *, only: set[bytes] | None = None) -> None:
        for tx in block.txs:
            event = self._event(tx, block, tip, only)
            if event is not None and not self._known(event):
                self._remember(event)

    def _match_mempool(self, tip: int) -> None:
        for tx in self._chain.mempool:
            if tx.kind == "lock" or tx.htlc_id not in self._ids:
                continue
            event = self._spend(tx, self._ids[tx.htlc_id], tip, None, 0)
            if not any(r.event.txid == tx.txid for r in self._reported):
                self._remember(event)

    def _remember(self, event: HtlcFound) -> None:
        # A spend found in a block replaces its mempool sighting.
        self._reported = [
            r for r in self._reported if not (r.event.txid == event.txid and r.event.block_hash is None)
        ]
        self._reported.append(_Reported(event, event.confirmations >= self._finality_depth))
        self._emit(event)

    def _known(self, event: HtlcFound) -> bool:
        return any(
            r.event.txid == event.txid and r.event.block_hash == event.block_hash for r in self._reported
        )

    def _event(self, tx: FakeTx, block: Block, tip: int, only: set[bytes] | None) -> HtlcFound | None:
        confirmations = tip - block.height + 1
        if tx.kind == "lock":
            hashlock = bytes.fromhex(tx.hashlock)
            if only is not None and hashlock not in only:
                return None
            terms = [t for t in self._watched.get(hashlock, ()) if _matches(tx, t)]
            if not terms:
                return None
            htlc_id = f"{tx.txid}:0"
            self._ids[htlc_id] = hashlock
            found = replace(terms[0], amount=tx.amount)
            return events.locked(
                self._name, block.height, block.hash, htlc_id=htlc_id, txid=tx.txid, found=found,
                confirmations=confirmations,
            )  # fmt: skip
        hashlock_of_spend = self._ids.get(tx.htlc_id)
        if hashlock_of_spend is None or (only is not None and hashlock_of_spend not in only):
            return None
        return self._spend(tx, hashlock_of_spend, block.height, block.hash, confirmations)

    def _spend(
        self, tx: FakeTx, hashlock: bytes, height: int, block_hash: str | None, confirmations: int
    ) -> Claimed | Refunded:
        if tx.kind == "claim":
            return events.claimed(
                self._name, height, block_hash, htlc_id=tx.htlc_id, hashlock=hashlock, txid=tx.txid,
                preimage=bytes.fromhex(tx.preimage), confirmations=confirmations,
            )  # fmt: skip
        return events.refunded(
            self._name, height, block_hash, htlc_id=tx.htlc_id, hashlock=hashlock, txid=tx.txid,
            confirmations=confirmations,
        )  # fmt: skip

    def _report_depths(self, tip: int) -> None:
        for r in self._reported:
            e = r.event
            if r.final or e.block_hash is None:
                continue
            confirmations = tip - e.height + 1
            if confirmations != e.confirmations:
                r.event = events.deeper(e, confirmations)
                r.final = confirmations >= self._finality_depth
                self._emit(r.event)

    def find_spend(self, htlc_id: str) -> Claimed | Refunded | None:
        """The claim or refund of ``htlc_id`` in a block or the mempool, handed on as an event now."""
        htlc = self._chain.htlc(htlc_id, pending=True)
        if htlc is None or htlc.spent_by is None:
            return None
        found = self._chain.find_tx(htlc.spent_by)
        assert found is not None
        tx, height = found
        hashlock = bytes.fromhex(htlc.lock.hashlock)
        self._ids.setdefault(htlc_id, hashlock)
        tip = self._chain.height
        if height is None:
            event = self._spend(tx, hashlock, tip, None, 0)
        else:
            block = self._chain.block(height)
            event = self._spend(tx, hashlock, height, block.hash, tip - height + 1)
        if not self._known(event):
            self._reported.append(_Reported(event, event.confirmations >= self._finality_depth))
        self._emit(event)
        return event


def _matches(tx: FakeTx, terms: HtlcTerms) -> bool:
    """Exact parties, asset and timelock; at least the agreed amount (S1)."""
    return (
        tx.asset == terms.asset
        and tx.sender == terms.sender
        and tx.recipient == terms.recipient
        and tx.timelock == terms.timelock
        and tx.amount >= terms.amount
    )
