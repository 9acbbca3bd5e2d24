"""What the scanner found for a watched HTLC: its funding output and the spend of it, and their JSON form."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from settlerd.adapters import ChainEventKind

from .htlc import sha256

SATS_PER_BTC = Decimal(100_000_000)


def sats(value: Any) -> int:
    return int(Decimal(str(value)) * SATS_PER_BTC)


@dataclass(slots=True)
class Spend:
    txid: str
    kind: ChainEventKind  # CLAIMED or REFUNDED
    preimage: bytes | None
    height: int  # 0 while only in the mempool
    block_hash: str | None
    reported: int = -1  # confirmations last reported to the engine, -1 for never


@dataclass(slots=True)
class Funding:
    outpoint: str
    script_pubkey: bytes
    hashlock: bytes
    amount: int
    height: int
    block_hash: str
    block_time: int
    reported: int = -1
    spend: Spend | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "outpoint": self.outpoint,
            "spk": self.script_pubkey.hex(),
            "hashlock": self.hashlock.hex(),
            "amount": self.amount,
            "height": self.height,
            "block_hash": self.block_hash,
            "block_time": self.block_time,
            "reported": self.reported,
        }
        if self.spend is not None:
            s = self.spend
            d["spend"] = [
                s.txid,
                s.kind.value,
                s.preimage.hex() if s.preimage else None,
                s.height,
                s.block_hash,
            ]
            d["spend_reported"] = s.reported
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Funding:
        spend = None
        if "spend" in d:
            txid, kind, preimage, height, block_hash = d["spend"]
            spend = Spend(
                txid,
                ChainEventKind(kind),
                bytes.fromhex(preimage) if preimage else None,
                height,
                block_hash,
                d["spend_reported"],
            )
        return cls(
            d["outpoint"],
            bytes.fromhex(d["spk"]),
            bytes.fromhex(d["hashlock"]),
            d["amount"],
            d["height"],
            d["block_hash"],
            d["block_time"],
            d["reported"],
            spend,
        )


def classify_spend(witness: list[str], htlc_hashlock: bytes) -> tuple[ChainEventKind, bytes | None]:
    """A claim pushes the preimage as the second witness item; a refund pushes 32 other bytes."""
    if len(witness) == 3:
        selector = bytes.fromhex(witness[1])
        if len(selector) == 32 and sha256(selector) == htlc_hashlock:
            return ChainEventKind.CLAIMED, selector
    return ChainEventKind.REFUNDED, None
