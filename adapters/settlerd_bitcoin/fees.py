"""Fee policy: the rate for a new transaction, and when and how far to bump an unconfirmed claim or refund.

Rates are in sat/vB. Every function here is pure; the adapter feeds them node estimates and heights.

A claim or a refund of an HTLC puts the whole HTLC at stake against a counterparty who can take it: a claim
loses it to the refund path once that opens (its deadline), and a refund loses it to the claim path, which
never closes, as soon as the counterparty holds the secret (for the participant's refund of leg 2, it always
does). So both start above the estimate and climb to the cap while they wait unconfirmed; a claim also climbs
as its deadline nears. Only blocks mined after the transaction's first broadcast count as waited: it could not
have been in the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

INCREMENTAL_RELAY_FEE = 1.0  # sat/vB: BIP125 rule 4, a replacement must pay at least this much more per vB
RACE_START_FACTOR = 2.0  # the estimate aims at ~6 blocks; a spend racing the counterparty aims sooner
RACE_CLIMB_BLOCKS = 6  # unconfirmed for ~1 h of blocks, the estimate was wrong: reach the cap then
BUMP_WINDOW_BLOCKS = 36  # a claim starts outbidding ~6 h before the refund path opens, time for a few bumps
URGENT_BLOCKS = 6  # within ~1 h of the deadline, pay the cap: losing the claim costs the whole leg


@dataclass(frozen=True, slots=True)
class FeePolicy:
    floor: float = 1.0  # sat/vB: below this Bitcoin Core does not relay
    cap: float = 200.0  # sat/vB: the most the operator lets any transaction pay
    conf_target: int = 6  # blocks, passed to estimatesmartfee

    def __post_init__(self) -> None:
        if not 0 < self.floor <= self.cap:
            raise ValueError(
                f"fee floor {self.floor} must be positive and at most the fee cap {self.cap} (sat/vB)"
            )

    def clamp(self, rate: float) -> float:
        return min(max(rate, self.floor), self.cap)

    def from_estimate(self, result: object) -> float:
        """The rate for an estimatesmartfee result; a missing or malformed estimate means the floor."""
        if not isinstance(result, dict):
            return self.floor
        btc_per_kvb = result.get("feerate")
        if not isinstance(btc_per_kvb, (int, float, Decimal)) or btc_per_kvb <= 0:
            return self.floor
        return self.clamp(math.ceil(float(btc_per_kvb) * 100_000_000 / 1000 * 10) / 10)

    def race_start(self, estimate: float) -> float:
        """The first rate of a claim or refund: above the estimate, within the floor and the cap."""
        return self.clamp(round(estimate * RACE_START_FACTOR, 1))


def _climb(start: float, cap: float, progress: float) -> float:
    """Geometric from ``start`` (progress 0) to ``cap`` (progress 1)."""
    if cap <= start or progress <= 0:
        return start
    if progress >= 1:
        return cap
    return round(start * float((cap / start) ** progress), 1)


def target_rate(start: float, cap: float, waited: int, blocks_left: int | None) -> float:
    """The rate a claim or refund first signed at ``start`` should pay now.

    ``waited``: blocks mined since its first broadcast without it. ``blocks_left``: for a claim, blocks
    before the counterparty's refund becomes valid in the next block; None for a refund, whose race with
    the counterparty's claim has no end. The rate climbs with the wait, reaching the cap after
    RACE_CLIMB_BLOCKS, and for a claim also with the deadline: inside BUMP_WINDOW_BLOCKS it rises to the
    cap, reached URGENT_BLOCKS before the deadline. It never drops below ``start``.
    """
    rate = _climb(start, cap, waited / RACE_CLIMB_BLOCKS)
    if blocks_left is not None and blocks_left <= BUMP_WINDOW_BLOCKS:
        progress = (BUMP_WINDOW_BLOCKS - blocks_left) / (BUMP_WINDOW_BLOCKS - URGENT_BLOCKS)
        rate = max(rate, _climb(start, cap, progress))
    return rate


def affordable_rate(amount: int, vsize: int, dust: int) -> float:
    """The highest rate (0.1 sat/vB steps) at which a one-output spend of ``amount`` keeps its output above
    ``dust``: the fee can never take the whole HTLC. One sat of slack absorbs float rounding in the fee."""
    return math.floor((amount - dust - 1) * 10 / vsize) / 10


def replacement_rate(current: float, target: float, cap: float) -> float | None:
    """The rate a replacement should pay, or None when the current transaction should just be rebroadcast.

    A replacement must beat the current rate by the incremental relay fee (BIP125 rule 4: with the same
    size, that also raises the absolute fee by at least the incremental fee times the size, rule 3), and
    never exceeds the cap.
    """
    if target <= current:
        return None
    rate = min(max(target, current + INCREMENTAL_RELAY_FEE), cap)
    return rate if rate >= current + INCREMENTAL_RELAY_FEE else None


def claim_blocks_left(tip: int, refund_locktime: int) -> int:
    """Blocks a claim has before the counterparty's refund becomes valid in the next block."""
    return refund_locktime - (tip + 1)


def blocks_waited(tip: int, sent_tip: int) -> int:
    """Blocks after ``sent_tip`` (the node's tip when the transaction was first broadcast) up to ``tip``."""
    return max(0, tip - sent_tip)
