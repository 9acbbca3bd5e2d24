"""The one place the kit builds and reads chain events, so the fake and the conformance suite follow the
contract's event types from here alone."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from settlerd.adapters import ChainEvent, ChainEventKind, HtlcTerms

Kind = ChainEventKind


def locked(
    chain: str, height: int, block_hash: str, *, htlc_id: str, txid: str, found: HtlcTerms,
    confirmations: int, block_time: datetime,
) -> ChainEvent:  # fmt: skip
    return ChainEvent(
        Kind.LOCKED, chain, height, block_hash, htlc_id=htlc_id, hashlock=found.hashlock, txid=txid,
        amount=found.amount, confirmations=confirmations, block_time=block_time, found=found,
    )  # fmt: skip


def claimed(
    chain: str, height: int, block_hash: str | None, *, htlc_id: str, hashlock: bytes, txid: str,
    preimage: bytes, confirmations: int,
) -> ChainEvent:  # fmt: skip
    return ChainEvent(
        Kind.CLAIMED, chain, height, block_hash, htlc_id=htlc_id, hashlock=hashlock, txid=txid,
        preimage=preimage, confirmations=confirmations,
    )  # fmt: skip


def refunded(
    chain: str, height: int, block_hash: str | None, *, htlc_id: str, hashlock: bytes, txid: str,
    confirmations: int,
) -> ChainEvent:  # fmt: skip
    return ChainEvent(
        Kind.REFUNDED, chain, height, block_hash, htlc_id=htlc_id, hashlock=hashlock, txid=txid,
        confirmations=confirmations,
    )  # fmt: skip


def reorged(event: ChainEvent) -> ChainEvent:
    """``event`` (a lock or spend in a block) left the best chain."""
    return ChainEvent(
        Kind.REORGED, event.chain, event.height, event.block_hash, htlc_id=event.htlc_id,
        hashlock=event.hashlock, txid=event.txid, amount=event.amount, undoes=event.kind,
    )  # fmt: skip


def tip(chain: str, height: int, block_hash: str) -> ChainEvent:
    return ChainEvent(Kind.TIP, chain, height, block_hash)


def deeper(event: ChainEvent, confirmations: int) -> ChainEvent:
    return replace(event, confirmations=confirmations)


def kind(event: ChainEvent) -> Kind:
    return event.kind


def in_block(event: ChainEvent) -> bool:
    """Whether ``event`` was found in a block, not in the mempool."""
    return event.block_hash is not None and event.confirmations > 0
