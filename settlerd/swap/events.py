"""What can happen to a swap. Every event carries ``at``, the wall-clock time the engine observed it:
the state machine has no clock of its own.

Three sources: trade capture (the API), the chain (adapters' scanners, translated by the engine), and the
engine reporting what became of the actions it was asked to carry out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from .terms import FoundHtlc, Leg, SwapTerms


class EventKind(enum.StrEnum):
    ACCEPTANCE_REGISTERED = "acceptance_registered"
    CANCEL_REQUESTED = "cancel_requested"
    LOCK_SEEN = "lock_seen"
    CONFIRMATIONS = "confirmations"
    CLAIM_SEEN = "claim_seen"
    REFUND_SEEN = "refund_seen"
    REORG = "reorg"
    TICK = "tick"
    LOCK_BROADCAST = "lock_broadcast"
    LOCK_REFUSED = "lock_refused"
    CLAIM_BROADCAST = "claim_broadcast"
    REFUND_BROADCAST = "refund_broadcast"


class Spend(enum.StrEnum):
    """Which transaction of an HTLC an event is about."""

    LOCK = "lock"
    CLAIM = "claim"
    REFUND = "refund"


# Trade capture


@dataclass(frozen=True, slots=True)
class AcceptanceRegistered:
    """The acceptance is registered: ``terms`` are the offer with the participant's addresses filled in."""

    kind: ClassVar[EventKind] = EventKind.ACCEPTANCE_REGISTERED
    at: datetime
    terms: SwapTerms


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """A desk asks to drop the swap; allowed only while none of our funds may be locked."""

    kind: ClassVar[EventKind] = EventKind.CANCEL_REQUESTED
    at: datetime
    reason: str


# Chain


@dataclass(frozen=True, slots=True)
class LockSeen:
    """An HTLC for this swap's hashlock on ``leg``'s chain, as found; checked against the terms here."""

    kind: ClassVar[EventKind] = EventKind.LOCK_SEEN
    at: datetime
    leg: Leg
    htlc_id: str
    found: FoundHtlc
    confirmations: int


@dataclass(frozen=True, slots=True)
class Confirmations:
    """The depth of an already reported lock, claim or refund changed."""

    kind: ClassVar[EventKind] = EventKind.CONFIRMATIONS
    at: datetime
    leg: Leg
    htlc_id: str
    spend: Spend
    confirmations: int


@dataclass(frozen=True, slots=True)
class ClaimSeen:
    """The HTLC was spent with a preimage (in a block: ``confirmations`` >= 1, or 0 from the mempool)."""

    kind: ClassVar[EventKind] = EventKind.CLAIM_SEEN
    at: datetime
    leg: Leg
    htlc_id: str
    txid: str
    preimage: bytes = field(repr=False)
    confirmations: int


@dataclass(frozen=True, slots=True)
class RefundSeen:
    """The HTLC was spent back to its sender after the timelock."""

    kind: ClassVar[EventKind] = EventKind.REFUND_SEEN
    at: datetime
    leg: Leg
    htlc_id: str
    txid: str
    confirmations: int


@dataclass(frozen=True, slots=True)
class Reorged:
    """A reorganisation removed an earlier lock, claim or refund of the HTLC from the best chain."""

    kind: ClassVar[EventKind] = EventKind.REORG
    at: datetime
    leg: Leg
    htlc_id: str
    undone: Spend


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed; deadlines are evaluated against ``at``."""

    kind: ClassVar[EventKind] = EventKind.TICK
    at: datetime


# Engine results


@dataclass(frozen=True, slots=True)
class LockBroadcast:
    """The engine persisted and broadcast our lock of ``leg``; ``htlc_id`` is known from the signed tx."""

    kind: ClassVar[EventKind] = EventKind.LOCK_BROADCAST
    at: datetime
    leg: Leg
    txid: str
    htlc_id: str


@dataclass(frozen=True, slots=True)
class LockRefused:
    """The engine's risk checks (balance, limits, fees) refused to lock ``leg``; nothing was signed."""

    kind: ClassVar[EventKind] = EventKind.LOCK_REFUSED
    at: datetime
    leg: Leg
    reason: str


@dataclass(frozen=True, slots=True)
class ClaimBroadcast:
    kind: ClassVar[EventKind] = EventKind.CLAIM_BROADCAST
    at: datetime
    leg: Leg
    txid: str


@dataclass(frozen=True, slots=True)
class RefundBroadcast:
    kind: ClassVar[EventKind] = EventKind.REFUND_BROADCAST
    at: datetime
    leg: Leg
    txid: str


Event = (
    AcceptanceRegistered
    | CancelRequested
    | LockSeen
    | Confirmations
    | ClaimSeen
    | RefundSeen
    | Reorged
    | Tick
    | LockBroadcast
    | LockRefused
    | ClaimBroadcast
    | RefundBroadcast
)

CHAIN_EVENTS: frozenset[EventKind] = frozenset(
    {
        EventKind.LOCK_SEEN,
        EventKind.CONFIRMATIONS,
        EventKind.CLAIM_SEEN,
        EventKind.REFUND_SEEN,
        EventKind.REORG,
        EventKind.TICK,
    }
)
