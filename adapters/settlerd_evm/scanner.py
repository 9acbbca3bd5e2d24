"""Reads the HTLC contract's logs once per block range and matches them against what is watched.

One ``eth_getLogs`` per range for the contract address, whatever the number of live swaps; matching is a
dictionary lookup. Reorgs are found by block hash: the scanner keeps the hashes of recent blocks, and when
the block it last scanned is no longer on the best chain it walks back to the fork, reports every event
above it as REORGED and scans the new branch. Tip and hashes are stored as cursors, so a restart resumes
where the scanner stopped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from settlerd.adapters import AdapterStore, ChainEvent, ChainEventKind, HtlcTerms

from . import contract as c

log = logging.getLogger(__name__)

# Hashes kept for reorg detection; a reorg deeper than this needs an operator (no EVM chain we support
# reorganises that deep once final).
REORG_WINDOW = 128
# Largest eth_getLogs range: public nodes commonly refuse more than a few thousand blocks at once.
MAX_LOG_RANGE = 2_000


class ReorgTooDeep(RuntimeError):
    pass


@dataclass(slots=True)
class _Reported:
    """An event already handed on, kept until it is buried deeper than the reorg window."""

    event: ChainEvent
    final: bool = False


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


class Scanner:
    def __init__(
        self,
        w3: Any,
        chain: str,
        address: str,
        store: AdapterStore,
        emit: Callable[[ChainEvent], None],
        *,
        finality_depth: int,
        backfill_blocks: int,
    ) -> None:
        self._w3 = w3
        self._chain = chain
        self._address = address
        self._store = store
        self._emit = emit
        self._finality_depth = finality_depth
        self._backfill_blocks = backfill_blocks
        # Both legs of a swap may be on this one chain (ETH against a token): several terms per hashlock.
        self._watched: dict[bytes, list[HtlcTerms]] = {}
        self._ids: dict[bytes, bytes] = {}  # swap id -> hashlock, for swaps matching watched terms
        self._new: set[bytes] = set()  # watched since the last poll: look back for them once
        self._height: int | None = None  # last block scanned
        self._hashes: dict[int, str] = {}
        self._reported: list[_Reported] = []

    @property
    def height(self) -> int | None:
        return self._height

    def watch(self, terms: HtlcTerms) -> None:
        watched = self._watched.setdefault(terms.hashlock, [])
        if terms not in watched:
            watched.append(terms)
        self._new.add(terms.hashlock)
        # The only lock that can match is the one with exactly these terms, so its contract id is known
        # now: its claim or refund is recognised even if its lock was logged before a restart.
        expected = c.swap_id(c.token_address(terms.asset), terms.sender, terms.timelock, terms.hashlock)
        self._ids[expected] = terms.hashlock

    def unwatch(self, hashlock: bytes) -> None:
        self._watched.pop(hashlock, None)
        self._new.discard(hashlock)
        self._ids = {i: h for i, h in self._ids.items() if h != hashlock}

    async def resume(self, start_height: int | None) -> None:
        tip = await self._store.get_cursor(self._chain, "scan:tip")
        if tip is not None:
            self._height = int(tip)
            hashes = await self._store.get_cursor(self._chain, "scan:hashes")
            self._hashes = {int(k): v for k, v in json.loads(hashes or "{}").items()}
            log.info("%s: scanner resumes after block %d", self._chain, self._height)
        else:
            self._height = (await self._w3.eth.block_number) if start_height is None else start_height - 1
            if self._height >= 0:
                # The starting block anchors reorg detection for everything scanned after it.
                self._hashes = {self._height: _hex((await self._w3.eth.get_block(self._height))["hash"])}

    async def poll(self) -> None:
        """Scan every block up to the node's tip; report new events, depth changes and reorgs."""
        assert self._height is not None, "resume() first"
        tip = int(await self._w3.eth.block_number)
        await self._rewind_if_reorged(tip)
        if self._new:
            await self._backfill(sorted(self._new), tip)
            self._new.clear()
        start = self._height + 1
        while start <= tip:
            end = min(tip, start + MAX_LOG_RANGE - 1)
            logs = await self._w3.eth.get_logs({"address": self._address, "fromBlock": start, "toBlock": end})
            self._match(logs, tip)
            start = end + 1
        for height in range(max(self._height + 1, tip - REORG_WINDOW + 1), tip + 1):
            block = await self._w3.eth.get_block(height)
            self._hashes[height] = _hex(block["hash"])
        if tip != self._height:
            self._height = tip
            self._hashes = {h: v for h, v in self._hashes.items() if h > tip - REORG_WINDOW}
            await self._store.put_cursor(self._chain, "scan:hashes", json.dumps(self._hashes))
            await self._store.put_cursor(self._chain, "scan:tip", str(tip))
            self._emit(ChainEvent(ChainEventKind.TIP, self._chain, tip, self._hashes.get(tip)))
        self._report_depths(tip)

    async def _rewind_if_reorged(self, tip: int) -> None:
        assert self._height is not None
        height = self._height
        while height in self._hashes:
            if height <= tip:
                block = await self._w3.eth.get_block(height)
                if _hex(block["hash"]) == self._hashes[height]:
                    break
            height -= 1
        else:
            if height != self._height and self._hashes:
                raise ReorgTooDeep(
                    f"{self._chain}: reorg deeper than {REORG_WINDOW} blocks below block {self._height}; "
                    "stop the daemon and check the node before resuming"
                )
        if height == self._height:
            return
        log.warning("%s: reorg, blocks above %d left the best chain", self._chain, height)
        kept = []
        for r in self._reported:
            if r.event.height > height:
                e = r.event
                self._emit(
                    ChainEvent(
                        ChainEventKind.REORGED, self._chain, e.height, e.block_hash, htlc_id=e.htlc_id,
                        hashlock=e.hashlock, txid=e.txid, amount=e.amount, undoes=e.kind,
                    )
                )  # fmt: skip
            else:
                kept.append(r)
        self._reported = kept
        self._hashes = {h: v for h, v in self._hashes.items() if h <= height}
        self._height = height
        await self._store.put_cursor(self._chain, "scan:hashes", json.dumps(self._hashes))
        await self._store.put_cursor(self._chain, "scan:tip", str(height))

    async def _backfill(self, hashlocks: list[bytes], tip: int) -> None:
        """Look back once for swaps watched after their lock (a restart, or a late watch)."""
        assert self._height is not None
        if self._height < 0:
            return
        start = max(0, tip - self._backfill_blocks)
        found: list[Any] = []
        for topics in ([None, [_hex(h) for h in hashlocks]], None):
            if topics is None:
                ids = [i for i, h in self._ids.items() if h in hashlocks]
                if not ids:
                    break
                topics = [_hex(c.REFUNDED_TOPIC), [_hex(i) for i in ids]]
            for lo in range(start, self._height + 1, MAX_LOG_RANGE):
                hi = min(self._height, lo + MAX_LOG_RANGE - 1)
                logs = await self._w3.eth.get_logs(
                    {"address": self._address, "fromBlock": lo, "toBlock": hi, "topics": topics}
                )
                self._match(logs, tip)
                found.extend(logs)
        log.debug("%s: backfill of %d hashlocks found %d logs", self._chain, len(hashlocks), len(found))

    def _match(self, logs: Iterable[Any], tip: int) -> None:
        for entry in logs:
            if entry.get("removed"):
                continue
            decoded = c.decode_log([bytes(t) for t in entry["topics"]], bytes(entry["data"]))
            height = int(entry["blockNumber"])
            base = {
                "chain": self._chain,
                "height": height,
                "block_hash": _hex(entry["blockHash"]),
                "txid": _hex(entry["transactionHash"]),
                "confirmations": tip - height + 1,
            }
            if isinstance(decoded, c.LockedLog):
                matching = [t for t in self._watched.get(decoded.hashlock, ()) if _matches(decoded, t)]
                if not matching:
                    continue
                terms = matching[0]
                self._ids[decoded.id] = decoded.hashlock
                found = replace(terms, amount=decoded.amount, timelock=decoded.timelock)
                event = ChainEvent(
                    ChainEventKind.LOCKED, htlc_id=_hex(decoded.id), hashlock=decoded.hashlock,
                    amount=decoded.amount, found=found, **base,
                )  # fmt: skip
            elif isinstance(decoded, c.ClaimedLog):
                if decoded.id not in self._ids:
                    continue
                # Hand the preimage on at once: the counter-leg must be claimed before its timelock.
                event = ChainEvent(
                    ChainEventKind.CLAIMED, htlc_id=_hex(decoded.id), hashlock=decoded.hashlock,
                    preimage=decoded.preimage, **base,
                )  # fmt: skip
            elif isinstance(decoded, c.RefundedLog):
                hashlock = self._ids.get(decoded.id)
                if hashlock is None:
                    continue
                event = ChainEvent(
                    ChainEventKind.REFUNDED, htlc_id=_hex(decoded.id), hashlock=hashlock, **base
                )
            else:
                continue
            if any(r.event.txid == event.txid and r.event.htlc_id == event.htlc_id for r in self._reported):
                continue
            final = event.confirmations >= self._finality_depth
            self._reported.append(_Reported(event, final))
            self._emit(event)

    def _report_depths(self, tip: int) -> None:
        """Re-report events whose depth changed, until they reach the finality depth."""
        kept = []
        for r in self._reported:
            e = r.event
            confirmations = tip - e.height + 1
            if not r.final and confirmations != e.confirmations:
                r.event = replace(e, confirmations=confirmations)
                r.final = confirmations >= self._finality_depth
                self._emit(r.event)
            if confirmations <= REORG_WINDOW:
                kept.append(r)
        self._reported = kept


def _matches(log_: c.LockedLog, terms: HtlcTerms) -> bool:
    """Exact parties, asset and timelock; at least the agreed amount (S1).

    The timelock must be exact, not merely later: it is part of the contract's swap id, and a claim is
    built from the agreed terms, so a lock with any other timelock could never be claimed by us.
    """
    return (
        log_.token.lower() == c.token_address(terms.asset).lower()
        and log_.sender.lower() == terms.sender.lower()
        and log_.recipient.lower() == terms.recipient.lower()
        and log_.amount >= terms.amount
        and log_.timelock == terms.timelock
    )
