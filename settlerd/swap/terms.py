"""The agreed terms of a swap, as data both daemons hold identically once the acceptance is registered.

Nothing chain-specific lives here: amounts are integers in the chain's base units, timelocks are the
chain-native integers the adapters computed, and every timelock comes with the wall-clock times it stands
for: the earliest its refund may open (``deadline``) and the latest (``latest``), each at the chain's stated
probability. The state machine reasons about those times; the chain only ever sees timelocks.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, fields
from datetime import datetime

HASHLOCK_BYTES = 32

# Stands in for the counterparty's address in an initiator's offer: the acceptance fills it in.
UNKNOWN_PARTY = ""


class Role(enum.StrEnum):
    """Which side of the swap this daemon plays."""

    INITIATOR = "initiator"  # made the secret, locks leg 1, claims leg 2 (revealing the secret)
    PARTICIPANT = "participant"  # locks leg 2 once leg 1 is final, claims leg 1 with the revealed secret

    @property
    def own_leg(self) -> Leg:
        """The leg this role funds (and refunds if the swap fails)."""
        return Leg.ONE if self is Role.INITIATOR else Leg.TWO

    @property
    def counter_leg(self) -> Leg:
        """The leg this role claims."""
        return self.own_leg.other


class Leg(enum.IntEnum):
    ONE = 1  # the initiator's lock, claimable by the participant
    TWO = 2  # the participant's lock, claimable by the initiator

    @property
    def other(self) -> Leg:
        return Leg.TWO if self is Leg.ONE else Leg.ONE


@dataclass(frozen=True, slots=True)
class LegTerms:
    """One leg's HTLC as agreed: what must be found on chain before anyone relies on it."""

    chain: str  # adapter name, e.g. "bitcoin" or "evm"
    asset: str  # "BTC", "ETH" or a token contract address: a lock in another asset is not this leg
    amount: int  # base units; a lock must carry at least this much
    hashlock: bytes  # sha256 of the secret
    recipient: str  # who may claim with the secret
    sender: str  # who may refund after the timelock
    timelock: int  # chain-native (block height, unix seconds); a lock must use at least this
    deadline: datetime  # the earliest moment the refund may open: claims must be in before it
    finality_depth: int  # confirmations after which a lock or spend on this chain is relied upon
    # The latest moment the refund opens; None for terms stored before it was kept (unknown: see policy).
    latest: datetime | None = None

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError(f"leg amount must be positive, got {self.amount}")
        if len(self.hashlock) != HASHLOCK_BYTES:
            raise ValueError(f"hashlock must be {HASHLOCK_BYTES} bytes, got {len(self.hashlock)}")
        if self.deadline.tzinfo is None or self.deadline.utcoffset() is None:
            raise ValueError("leg deadline must be a timezone-aware datetime")
        if self.latest is not None:
            if self.latest.tzinfo is None or self.latest.utcoffset() is None:
                raise ValueError("leg latest refund time must be a timezone-aware datetime")
            if self.latest < self.deadline:
                raise ValueError(
                    f"leg latest refund time {self.latest.isoformat()} is before its deadline "
                    f"{self.deadline.isoformat()}"
                )
        if self.finality_depth < 1:
            raise ValueError(f"finality depth must be at least 1, got {self.finality_depth}")


@dataclass(frozen=True, slots=True)
class SwapTerms:
    """Both legs. Leg 2's deadline comes before leg 1's: see ``policy.check_timelocks``."""

    leg1: LegTerms
    leg2: LegTerms

    def __post_init__(self) -> None:
        if self.leg1.hashlock != self.leg2.hashlock:
            raise ValueError("both legs must lock with the same hashlock")

    @property
    def hashlock(self) -> bytes:
        return self.leg1.hashlock

    def leg(self, leg: Leg) -> LegTerms:
        return self.leg1 if leg is Leg.ONE else self.leg2

    @property
    def complete(self) -> bool:
        """True once the counterparty's addresses are known (after the acceptance)."""
        return UNKNOWN_PARTY not in (
            self.leg1.recipient,
            self.leg1.sender,
            self.leg2.recipient,
            self.leg2.sender,
        )

    def opens(self, secret: bytes) -> bool:
        """Whether ``secret`` is the preimage of this swap's hashlock."""
        return hashlib.sha256(secret).digest() == self.hashlock


# The fields an acceptance may fill in: the participant's addresses, unknown to the initiator's offer.
_COUNTERPARTY_FIELDS = {1: "recipient", 2: "sender"}


def acceptance_mismatches(offer: SwapTerms, accepted: SwapTerms) -> list[str]:
    """Why ``accepted`` is not the offer with the participant's addresses filled in (empty if it is)."""
    problems: list[str] = []
    for number, (old, new) in enumerate(((offer.leg1, accepted.leg1), (offer.leg2, accepted.leg2)), start=1):
        for f in fields(LegTerms):
            before, after = getattr(old, f.name), getattr(new, f.name)
            if before == after:
                continue
            if f.name == _COUNTERPARTY_FIELDS[number] and before == UNKNOWN_PARTY:
                continue
            problems.append(f"leg {number} {f.name}: offer has {before!r}, acceptance has {after!r}")
    if not accepted.complete:
        problems.append("acceptance leaves a party address empty")
    return problems


@dataclass(frozen=True, slots=True)
class FoundHtlc:
    """An HTLC as the scanner found it on chain, in the same units as ``LegTerms``."""

    chain: str
    asset: str
    amount: int
    hashlock: bytes
    recipient: str
    timelock: int


def lock_mismatches(agreed: LegTerms, found: FoundHtlc) -> list[str]:
    """Why ``found`` is not an acceptable lock of the agreed leg (empty if it is).

    Exact where exactness protects us (chain, asset, hash, recipient); at least as good as agreed where
    more only helps the claimer (amount, timelock).
    """
    problems: list[str] = []
    if found.chain != agreed.chain:
        problems.append(f"chain {found.chain!r} is not the agreed {agreed.chain!r}")
    if found.asset != agreed.asset:
        problems.append(f"asset {found.asset!r} is not the agreed {agreed.asset!r}")
    if found.hashlock != agreed.hashlock:
        problems.append("hashlock differs from the agreed one")
    if found.recipient != agreed.recipient:
        problems.append(f"recipient {found.recipient!r} is not the agreed {agreed.recipient!r}")
    if found.amount < agreed.amount:
        problems.append(f"amount {found.amount} is below the agreed {agreed.amount}")
    if found.timelock < agreed.timelock:
        problems.append(f"timelock {found.timelock} is before the agreed {agreed.timelock}")
    return problems
