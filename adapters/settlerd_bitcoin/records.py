"""What the scanner found for a watched HTLC: its funding output and the spend of it, and their JSON form."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from settlerd.adapters import HtlcFact

from .htlc import sha256

SATS_PER_BTC = Decimal(100_000_000)


def sats(value: Any) -> int:
    return int(Decimal(str(value)) * SATS_PER_BTC)


@dataclass(slots=True)
class Spend:
    txid: str
    preimage: bytes | None  # revealed by a claim; None for a refund
    height: int  # 0 while only in the mempool
    block_hash: str | None
    reported: int = -1  # confirmations last reported to the engine, -1 for never

    @property
    def fact(self) -> HtlcFact:
        return HtlcFact.REFUNDED if self.preimage is None else HtlcFact.CLAIMED


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
                s.fact.value,  # kept in the saved form, which predates deriving it from the preimage
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
            txid, _fact, preimage, height, block_hash = d["spend"]
            spend = Spend(
                txid,
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


def revealed_preimage(witness: list[str], htlc_hashlock: bytes) -> bytes | None:
    """The preimage a claim pushes as the second witness item; None for a refund, which pushes 32 other
    bytes."""
    if len(witness) == 3:
        selector = bytes.fromhex(witness[1])
        if len(selector) == 32 and sha256(selector) == htlc_hashlock:
            return selector
    return None
