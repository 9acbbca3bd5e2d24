"""Fee policy: the rate for a new transaction, and when and how far to bump an unconfirmed claim or refund.

Rates are in sat/vB. Every function here is pure; the adapter feeds them node estimates and heights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

INCREMENTAL_RELAY_FEE = 1.0  # sat/vB: BIP125 rule 4, a replacement must pay at least this much more per vB
BUMP_WINDOW_BLOCKS = 36  # a claim starts outbidding ~6 h before the refund path opens, time for a few bumps
URGENT_BLOCKS = 6  # within ~1 h of the deadline, pay the cap: losing the claim costs the whole leg
REFUND_PATIENCE_BLOCKS = 72  # a refund has no racing deadline; it climbs to the cap over ~12 h unconfirmed


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


def target_rate(initial: float, cap: float, blocks_left: int, window: int = BUMP_WINDOW_BLOCKS) -> float:
    """The rate a spend should pay with ``blocks_left`` blocks before its deadline.

    Outside the window: the rate it was first built with. Inside it: rising geometrically from the
    initial rate to the cap, reaching the cap ``URGENT_BLOCKS`` before the deadline and staying there.
    """
    if cap <= initial or blocks_left > window:
        return initial
    if blocks_left <= URGENT_BLOCKS:
        return cap
    progress = (window - blocks_left) / (window - URGENT_BLOCKS)
    return round(initial * float((cap / initial) ** progress), 1)


def replacement_rate(current: float, target: float, cap: float) -> float | None:
    """The rate a replacement should pay, or None when the current transaction should just be rebroadcast.

    A replacement must beat the current rate by the incremental relay fee, and never exceeds the cap.
    """
    if target <= current:
        return None
    rate = min(max(target, current + INCREMENTAL_RELAY_FEE), cap)
    return rate if rate >= current + INCREMENTAL_RELAY_FEE else None


def claim_blocks_left(tip: int, refund_locktime: int) -> int:
    """Blocks a claim has before the counterparty's refund becomes valid in the next block."""
    return refund_locktime - (tip + 1)


def refund_blocks_left(tip: int, first_seen_tip: int) -> int:
    """A refund's virtual deadline: it becomes urgent after REFUND_PATIENCE_BLOCKS unconfirmed."""
    return REFUND_PATIENCE_BLOCKS - (tip - first_seen_tip)
