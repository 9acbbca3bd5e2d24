"""The one place the kit builds and reads chain events, so the fake and the conformance suite follow the
contract's event types from here alone."""

from __future__ import annotations

from dataclasses import replace

from settlerd.adapters import Claimed, HtlcFound, HtlcTerms, Locked, Refunded, Reorged, Tip


def locked(
    chain: str, height: int, block_hash: str, *, htlc_id: str, txid: str, found: HtlcTerms,
    confirmations: int,
) -> Locked:  # fmt: skip
    return Locked(
        chain, height, block_hash, htlc_id, found.hashlock, txid, found.amount, confirmations, found
    )


def claimed(
    chain: str, height: int, block_hash: str | None, *, htlc_id: str, hashlock: bytes, txid: str,
    preimage: bytes, confirmations: int,
) -> Claimed:  # fmt: skip
    return Claimed(chain, height, block_hash, htlc_id, hashlock, txid, preimage, confirmations)


def refunded(
    chain: str, height: int, block_hash: str | None, *, htlc_id: str, hashlock: bytes, txid: str,
    confirmations: int,
) -> Refunded:  # fmt: skip
    return Refunded(chain, height, block_hash, htlc_id, hashlock, txid, confirmations)


def reorged(event: HtlcFound) -> Reorged:
    """``event`` (a lock or spend in a block) left the best chain."""
    return Reorged(
        event.chain, event.height, event.block_hash, event.htlc_id, event.hashlock, event.txid, event.fact
    )


def tip(chain: str, height: int, block_hash: str) -> Tip:
    return Tip(chain, height, block_hash)


def deeper(event: HtlcFound, confirmations: int) -> HtlcFound:
    return replace(event, confirmations=confirmations)


def in_block(event: HtlcFound) -> bool:
    """Whether ``event`` was found in a block, not in the mempool."""
    return event.block_hash is not None and event.confirmations > 0
