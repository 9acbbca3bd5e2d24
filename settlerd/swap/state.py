"""The swap's state: the facts gathered from events, from which its status is derived.

Facts only accumulate, except when a reorg event takes one back: that is what keeps the status from
moving backwards (S5) without a reorg.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from .events import Spend
from .policy import Policy
from .status import Status
from .terms import Leg, Role, SwapTerms


@dataclass(frozen=True, slots=True)
class LegState:
    """What we know about one leg on chain, and which spends of it we asked the engine for."""

    htlc_id: str | None = (
        None  # the HTLC that is this leg: from our own broadcast or its first exact sighting
    )
    lock: int | None = None  # confirmations of the exact-terms lock on the best chain; None: not on it
    claim: int | None = None  # confirmations of its claim; None: not claimed on the best chain
    refund: int | None = None  # confirmations of its refund; None: not refunded on the best chain
    lock_requested: bool = False
    lock_sent: bool = False
    claim_requested: bool = False
    claim_sent: bool = False
    refund_requested: bool = False
    refund_sent: bool = False
    ignored: frozenset[str] = frozenset()  # HTLCs seen for this leg that are not it (wrong terms, duplicates)

    def seen(self, spend: Spend) -> int | None:
        if spend is Spend.LOCK:
            return self.lock
        return self.claim if spend is Spend.CLAIM else self.refund

    def with_seen(self, spend: Spend, confirmations: int | None) -> LegState:
        if spend is Spend.LOCK:
            return replace(self, lock=confirmations)
        if spend is Spend.CLAIM:
            return replace(self, claim=confirmations)
        return replace(self, refund=confirmations)

    @property
    def spent(self) -> bool:
        return self.claim is not None or self.refund is not None


@dataclass(frozen=True, slots=True)
class SwapState:
    swap_id: str
    role: Role
    terms: SwapTerms
    policy: Policy
    status: Status
    now: datetime  # the latest event time seen: time never runs backwards for a swap
    accepted: bool = False
    leg1: LegState = LegState()
    leg2: LegState = LegState()
    # Known from the start by the initiator, learned from the leg 2 claim by the participant. Never
    # printed (S7); the store keeps it because a restarted initiator must still be able to claim.
    secret: bytes | None = field(default=None, repr=False)
    cancel_reason: str | None = None  # set when the swap ends before any of our funds were locked
    alerted: frozenset[str] = frozenset()  # alert codes already raised, so each is raised once

    def leg(self, leg: Leg) -> LegState:
        return self.leg1 if leg is Leg.ONE else self.leg2

    def with_leg(self, leg: Leg, state: LegState) -> SwapState:
        return replace(self, leg1=state) if leg is Leg.ONE else replace(self, leg2=state)

    def is_final(self, leg: Leg, spend: Spend) -> bool:
        """Whether that spend of the leg is on the best chain at or beyond the leg's finality depth."""
        confirmations = self.leg(leg).seen(spend)
        return confirmations is not None and confirmations >= self.terms.leg(leg).finality_depth

    def is_seen(self, leg: Leg, spend: Spend) -> bool:
        return self.leg(leg).seen(spend) is not None
