"""Reads the HTLC contract's logs once per block range and matches them against what is watched.

One ``eth_getLogs`` per range for the contract address, whatever the number of live swaps, filtered on
the node by the contract's event topics and the watched hashlocks and swap ids, so a stranger's locks on
the same contract cost nothing; matching is a dictionary lookup. A range the node refuses as too big (a
provider's cap on results, block span or response size) is asked again in halves down to one block.
Reorgs are found by block hash: the scanner keeps the hashes of recent blocks, and when the block it last
scanned is no longer on the best chain it walks back to the fork, reports every event above it as
Reorged and scans the new branch. An answer that is not what the call returns is a ``NodeFault``: nothing
of it is used and the height does not move. Tip and hashes are stored as cursors, so a restart resumes
where the scanner stopped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import ClientResponseError
from eth_abi.exceptions import DecodingError
from web3.exceptions import BadResponseFormat, Web3RPCError

from settlerd.adapters import (
    AdapterStore,
    ChainEvent,
    Claimed,
    HtlcFound,
    HtlcTerms,
    Locked,
    Refunded,
    Reorged,
    Tip,
)

from . import contract as c

log = logging.getLogger(__name__)

# Hashes kept for reorg detection; a reorg deeper than this needs an operator (no EVM chain we support
# reorganises that deep once final).
REORG_WINDOW = 128
# Largest eth_getLogs range: public nodes commonly refuse more than a few thousand blocks at once.
MAX_LOG_RANGE = 2_000
# Topic values per query: providers cap a request's parameters (Infura at 5,000); beyond this many live
# hashlocks and swap ids, a range is asked in several queries.
MAX_TOPICS = 1_000
EVENT_TOPICS = [c.LOCKED_TOPIC, c.CLAIMED_TOPIC, c.REFUNDED_TOPIC]
# How nodes and providers refuse an eth_getLogs that is too big: EIP-1474's "limit exceeded" code, which
# Infura and Erigon use, and the words of the messages seen from geth, Alchemy, Infura, QuickNode, Erigon
# and Ankr ("query returned more than 10000 results", "Log response size exceeded", "query exceeds max
# results 20000", "block range is too wide", "range 100000 exceeds limit of 10000").
LIMIT_EXCEEDED = -32005
TOO_BIG_WORDS = ("result", "limit", "exceed", "too many", "too large", "too big", "too wide", "range", "size")
# Infura answers -32005 to a rate limit too ("project ID request rate exceeded"): smaller ranges would only
# mean more requests.
RATE_WORDS = ("rate", "request count", "too many requests")
PAYLOAD_TOO_LARGE = 413


class ReorgTooDeep(RuntimeError):
    pass


class NodeFault(RuntimeError):
    """The node answered with something that is not what the call returns (garbage, missing fields).

    Nothing it said was used: the scanner's height did not move, and the next poll asks again.
    """


@dataclass(slots=True)
class _Reported:
    """An event already handed on, kept until it is buried deeper than the reorg window."""

    event: HtlcFound
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
        self._span = MAX_LOG_RANGE  # blocks per eth_getLogs: what the node last accepted, see ``_scan``

    @property
    def height(self) -> int | None:
        return self._height

    @property
    def chain(self) -> str:
        return self._chain

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
        tip = await self._tip()
        await self._rewind_if_reorged(tip)
        if self._new:
            await self._backfill(sorted(self._new), tip)
            self._new.clear()
        # Hashes before logs: an event found ahead of the scan (``find_spend``) whose block has left the
        # chain is undone before the new branch's logs are matched.
        hashes = {
            height: await self._block_hash(height)
            for height in range(max(self._height + 1, tip - REORG_WINDOW + 1), tip + 1)
        }
        self._undo_orphans(hashes)
        for topics in self._topics():
            self._match(await self._scan(self._height + 1, tip, topics), tip)
        self._hashes.update(hashes)
        if tip != self._height:
            self._height = tip
            self._hashes = {h: v for h, v in self._hashes.items() if h > tip - REORG_WINDOW}
            await self._store.put_cursor(self._chain, "scan:hashes", json.dumps(self._hashes))
            await self._store.put_cursor(self._chain, "scan:tip", str(tip))
            self._emit(Tip(self._chain, tip, self._hashes.get(tip)))
        self._report_depths(tip)

    async def find_spend(self, htlc_id: bytes, hashlock: bytes) -> Claimed | Refunded | None:
        """The latest Claimed or Refunded log of swap ``htlc_id`` up to the node's tip, reported as if
        scanned (depth updates, reorgs); None if there is none within the backfill window.

        For a claim or refund that reverts with SwapNotActive: the spend may lie ahead of the scan, or in
        a range this scanner has not reached.
        """
        tip = await self._tip()
        for r in sorted(self._reported, key=lambda r: r.event.height, reverse=True):
            known = r.event
            if isinstance(known, Claimed | Refunded) and known.htlc_id == _hex(htlc_id):
                # Found before, and still on the chain as far as this scanner knows: no need to look again.
                known = replace(known, confirmations=tip - known.height + 1)
                r.event, r.final = known, known.confirmations >= self._finality_depth
                self._emit(known)
                return known
        self._ids.setdefault(htlc_id, hashlock)
        # Claimed is indexed by hashlock, Refunded by id: one query finds both.
        topics = [[_hex(c.CLAIMED_TOPIC), _hex(c.REFUNDED_TOPIC)], [_hex(hashlock), _hex(htlc_id)]]
        spends: list[tuple[int, int, Claimed | Refunded]] = []
        for entry in await self._scan(max(0, tip - self._backfill_blocks), tip, topics):
            event = self._event(entry, tip)
            if isinstance(event, Claimed | Refunded) and event.htlc_id == _hex(htlc_id):
                spends.append((event.height, int(entry.get("logIndex") or 0), event))
        if not spends:
            return None
        event = max(spends, key=lambda s: s[:2])[2]
        if not self._known(event):
            self._reported.append(_Reported(event, event.confirmations >= self._finality_depth))
        # Handed on even when reported before: the caller acts on it now, whatever the queue holds.
        self._emit(event)
        return event

    async def _tip(self) -> int:
        tip = await self._w3.eth.block_number
        if not isinstance(tip, int) or tip < 0:
            raise NodeFault(f"{self._chain}: eth_blockNumber returned {tip!r}")
        return tip

    async def _block_hash(self, height: int) -> str:
        block = await self._w3.eth.get_block(height)
        try:
            return _hex(block["hash"])
        except (KeyError, TypeError, ValueError) as exc:
            raise NodeFault(f"{self._chain}: block {height} came without a hash: {exc!r}") from None

    def _topics(self) -> list[list[Any]]:
        """The filters a range is asked with: our events, for the watched hashlocks and swap ids.

        Locked and Claimed index the hashlock, Refunded the swap id; a hashlock never equals a swap id
        by chance, so one list of both serves all three. Nothing watched, nothing to ask.
        """
        values = sorted({*self._watched, *self._ids})
        return [
            [[_hex(t) for t in EVENT_TOPICS], [_hex(v) for v in values[i : i + MAX_TOPICS]]]
            for i in range(0, len(values), MAX_TOPICS)
        ]

    async def _scan(self, lo: int, hi: int, topics: list[Any]) -> list[Mapping[str, Any]]:
        """Every log of the contract in blocks lo..hi matching ``topics``, in ranges of the span that
        last passed: halved by each refusal, doubled back after each range that passes whole."""
        found: list[Mapping[str, Any]] = []
        while lo <= hi:
            span = self._span
            end = min(hi, lo + span - 1)
            found += await self._logs(lo, end, topics)
            if self._span == span and end - lo + 1 == span:
                self._span = min(MAX_LOG_RANGE, span * 2)
            lo = end + 1
        return found

    async def _logs(self, lo: int, hi: int, topics: list[Any]) -> list[Mapping[str, Any]]:
        """Every log of the contract in blocks lo..hi matching ``topics``; a range the node refuses as
        too big is asked again in halves, down to single blocks."""
        query = {"address": self._address, "fromBlock": lo, "toBlock": hi, "topics": topics}
        try:
            found = await self._w3.eth.get_logs(query)
        except (TypeError, ValueError, KeyError, BadResponseFormat) as exc:
            # web3's result formatters choke on garbage before we see it.
            raise NodeFault(f"{self._chain}: eth_getLogs for blocks {lo}-{hi}: {exc!r}") from None
        except (Web3RPCError, ClientResponseError) as exc:
            if lo == hi or not _too_big(exc):
                raise
            mid = (lo + hi) // 2
            self._span = max(1, min(self._span, mid - lo + 1))
            log.debug(
                "%s: logs of blocks %d-%d refused as too big, asking in halves: %s", self._chain, lo, hi, exc
            )
            return await self._logs(lo, mid, topics) + await self._logs(mid + 1, hi, topics)
        if not isinstance(found, list | tuple) or not all(isinstance(e, Mapping) for e in found):
            raise NodeFault(f"{self._chain}: eth_getLogs for blocks {lo}-{hi} returned {str(found)[:200]!r}")
        return list(found)

    def _undo_orphans(self, hashes: Mapping[int, str]) -> None:
        """Report as Reorged the events found ahead of the scan whose block is no longer on the chain."""
        kept = []
        for r in self._reported:
            e = r.event
            if e.height in hashes and hashes[e.height] != e.block_hash:
                log.warning(
                    "%s: block %d of %s %s left the best chain", self._chain, e.height, e.fact, e.txid
                )
                self._emit(_reorged(e))
            else:
                kept.append(r)
        self._reported = kept

    async def _rewind_if_reorged(self, tip: int) -> None:
        assert self._height is not None
        height = self._height
        while height in self._hashes:
            if height <= tip and await self._block_hash(height) == self._hashes[height]:
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
                self._emit(_reorged(r.event))
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
        ids = [i for i, h in self._ids.items() if h in hashlocks]
        values = [_hex(v) for v in [*hashlocks, *ids]]
        found = 0
        for i in range(0, len(values), MAX_TOPICS):
            topics = [[_hex(t) for t in EVENT_TOPICS], values[i : i + MAX_TOPICS]]
            logs = await self._scan(max(0, tip - self._backfill_blocks), self._height, topics)
            self._match(logs, tip)
            found += len(logs)
        log.debug("%s: backfill of %d hashlocks found %d logs", self._chain, len(hashlocks), found)

    def _match(self, logs: Iterable[Mapping[str, Any]], tip: int) -> None:
        events = [e for e in (self._event(entry, tip) for entry in logs) if e is not None]
        for event in events:
            if self._known(event):
                continue
            final = event.confirmations >= self._finality_depth
            self._reported.append(_Reported(event, final))
            self._emit(event)

    def _known(self, event: HtlcFound) -> bool:
        return any(
            r.event.txid == event.txid
            and r.event.htlc_id == event.htlc_id
            and r.event.block_hash == event.block_hash
            for r in self._reported
        )

    def _event(self, entry: Mapping[str, Any], tip: int) -> HtlcFound | None:
        """The event a log means for what is watched, or None; a malformed log is a node fault."""
        if entry.get("removed"):
            return None
        try:
            if str(entry["address"]).lower() != self._address.lower():
                raise ValueError(f"a log of {entry['address']}, not of the contract")
            decoded = c.decode_log([_word(t) for t in entry["topics"]], bytes(entry["data"]))
            height = int(entry["blockNumber"])
            block_hash = _hex(_word(entry["blockHash"]))
            txid = _hex(_word(entry["transactionHash"]))
        except (KeyError, TypeError, ValueError, DecodingError) as exc:
            raise NodeFault(f"{self._chain}: malformed log {str(entry)[:300]}: {exc!r}") from None
        if isinstance(decoded, c.LockedLog):
            matching = [t for t in self._watched.get(decoded.hashlock, ()) if _matches(decoded, t)]
            if not matching:
                return None
            self._ids[decoded.id] = decoded.hashlock
            found = replace(matching[0], amount=decoded.amount, timelock=decoded.timelock)
            return Locked(
                self._chain, height, block_hash, _hex(decoded.id), decoded.hashlock, txid, decoded.amount,
                tip - height + 1, found,
            )  # fmt: skip
        if isinstance(decoded, c.ClaimedLog):
            if decoded.id not in self._ids:
                return None
            # Hand the preimage on at once: the counter-leg must be claimed before its timelock.
            return Claimed(
                self._chain, height, block_hash, _hex(decoded.id), decoded.hashlock, txid, decoded.preimage,
                tip - height + 1,
            )  # fmt: skip
        if isinstance(decoded, c.RefundedLog):
            hashlock = self._ids.get(decoded.id)
            if hashlock is None:
                return None
            return Refunded(
                self._chain, height, block_hash, _hex(decoded.id), hashlock, txid, tip - height + 1
            )
        return None

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


def _word(value: Any) -> bytes:
    """A 32-byte hash or topic, as web3 hands them on (HexBytes); anything else is not one."""
    word = bytes(value)
    if len(word) != 32:
        raise ValueError(f"{value!r} is not 32 bytes")
    return word


def _too_big(exc: Exception) -> bool:
    """Whether the node refused a log query for its size, so smaller ranges may pass."""
    if isinstance(exc, ClientResponseError):
        return exc.status == PAYLOAD_TOO_LARGE
    error = exc.rpc_response.get("error") if isinstance(exc, Web3RPCError) and exc.rpc_response else None
    message = (str(error.get("message", "")) if isinstance(error, Mapping) else str(exc)).lower()
    if any(word in message for word in RATE_WORDS):
        return False
    if isinstance(error, Mapping) and error.get("code") == LIMIT_EXCEEDED:
        return True
    return any(word in message for word in TOO_BIG_WORDS)


def _reorged(e: HtlcFound) -> Reorged:
    return Reorged(e.chain, e.height, e.block_hash, e.htlc_id, e.hashlock, e.txid, e.fact)


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
