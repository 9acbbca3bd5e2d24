"""What a step asks the engine to do. The engine persists the new state and these actions in one
transaction, then carries them out (persist the signed transaction, then broadcast: S4) and reports back
with an engine-result event. Asking twice for the same spend is harmless: the engine rebroadcasts the
transaction it already journaled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .terms import Leg


@dataclass(frozen=True, slots=True)
class Watch:
    """Add the leg's HTLC to its chain's scanner index."""

    leg: Leg


@dataclass(frozen=True, slots=True)
class Unwatch:
    """The swap has ended: drop the leg from the scanner index."""

    leg: Leg


@dataclass(frozen=True, slots=True)
class LockLeg:
    """Fund our leg's HTLC with the agreed terms; answer with LockBroadcast or LockRefused."""

    leg: Leg


@dataclass(frozen=True, slots=True)
class ClaimLeg:
    """Claim the counter-leg with the secret, and keep it going until final (S3).

    ``urgent`` claims are close to ``deadline``: they go before any other work and pay for it.
    """

    leg: Leg
    htlc_id: str
    preimage: bytes = field(repr=False)
    deadline: datetime
    urgent: bool


@dataclass(frozen=True, slots=True)
class RefundLeg:
    """Refund our leg's HTLC: its timelock has passed and it was not claimed."""

    leg: Leg
    htlc_id: str


@dataclass(frozen=True, slots=True)
class Alert:
    """Something an operator must look at; the swap carries on as the message says."""

    code: str
    message: str


Action = Watch | Unwatch | LockLeg | ClaimLeg | RefundLeg | Alert
