"""Rows as the store returns them: plain frozen dataclasses, safe to serialise (no secrets in any)."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..adapters import Purpose, SignedTx


class TxStatus(enum.StrEnum):
    SIGNED = "signed"  # persisted, not yet handed to a node (S4: always before broadcast)
    BROADCAST = "broadcast"
    CONFIRMED = "confirmed"
    REPLACED = "replaced"  # a fee bump or a nonce reuse confirmed instead
    DROPPED = "dropped"  # evicted and not to be rebroadcast


UNCONFIRMED = (TxStatus.SIGNED, TxStatus.BROADCAST)


@dataclass(frozen=True, slots=True)
class Swap:
    id: str
    role: str
    status: str
    counterparty: str
    terms: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Leg:
    swap_id: str
    leg: int  # 1: the initiator's lock, 2: the participant's
    chain: str
    asset: str
    amount: int  # base units; may exceed 64 bits (wei)
    hashlock: bytes
    sender: str
    recipient: str
    timelock: int  # chain-native
    htlc_id: str | None = None
    lock_txid: str | None = None
    claim_txid: str | None = None
    refund_txid: str | None = None
    confirmations: int = 0
    final: bool = False
    deadline: datetime | None = None


# The journal keeps a transaction's HTLC id in its meta column, as it did before ``SignedTx`` had the field:
# entries written then read back the same.
HTLC_ID_KEY = "htlc_id"


def journal_meta(tx: SignedTx) -> dict[str, Any]:
    """``tx.meta`` as the journal stores it, with the HTLC id the transaction names."""
    return {**tx.meta, HTLC_ID_KEY: tx.htlc_id} if tx.htlc_id is not None else dict(tx.meta)


@dataclass(frozen=True, slots=True)
class SignedTxRecord:
    id: int
    chain: str
    swap_id: str | None
    leg: int | None
    purpose: Purpose
    htlc_id: str | None
    txid: str
    raw: bytes
    nonce: int | None
    meta: Mapping[str, Any]
    status: TxStatus
    created_at: datetime
    broadcast_at: datetime | None
    confirmed_height: int | None
    replaces: str | None

    def as_signed_tx(self) -> SignedTx:
        return SignedTx(
            chain=self.chain,
            txid=self.txid,
            raw=self.raw,
            purpose=self.purpose,
            htlc_id=self.htlc_id,
            nonce=self.nonce,
            meta=dict(self.meta),
        )


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    swap_id: str | None
    kind: str
    status: str | None
    payload_json: str  # the stored canonical text, exactly what the hash covers
    created_at: datetime
    prev_hash: str
    hash: str

    @property
    def payload(self) -> Mapping[str, Any]:
        parsed: Mapping[str, Any] = json.loads(self.payload_json)
        return parsed


@dataclass(frozen=True, slots=True)
class ChainHead:
    seq: int  # 0 while the log is empty
    hash: str
