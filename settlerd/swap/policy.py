"""Timelock policy: the safety distances between deadlines, and the checks built on them.

Every check returns a list of reasons (empty when the terms pass), phrased for the operator: which
deadline, by how much, and why it matters.

A leg's refund opens at a random time between its ``deadline`` (the earliest) and its ``latest``, each bound
at its chain's stated probability. Each check compares the bound that is against us: the secret can appear
as late as leg 2's latest refund time, leg 1's refund can open as early as its deadline, and the initiator's
claim must be in before leg 2's deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

from .terms import SwapTerms

# Between leg 2's latest refund time (the latest moment the secret can appear) and leg 1's deadline (the
# earliest its refund opens): the participant's time to get its leg 1 claim confirmed, fee bumps included,
# after a last-minute reveal.
LEG1_CLAIM_MARGIN = timedelta(hours=6)

# Leg 2 lasts at most this share of leg 1, both counted to their deadlines (earliest refund times): the
# rest of leg 1's window is the participant's to claim in. Leg 1 lengthened to clear leg 2's latest refund
# time (``leg1_deadline``) only lowers the share.
MAX_LEG2_SHARE = Fraction(2, 3)

# Leg 2 must last at least this long from when the terms are checked: leg 1 has to lock and reach
# finality, then leg 2 has to lock and reach finality, then the initiator has to claim.
MIN_LEG2_DURATION = timedelta(hours=3)

# The participant does not lock leg 2 with less than this left before leg 2's deadline: the initiator
# needs it to see leg 2 final and claim before its own reveal cut-off.
MIN_LEG2_WINDOW = timedelta(hours=2)

# The initiator never reveals the secret later than this before leg 2's deadline: its claim must confirm
# before the participant may refund leg 2, or the participant could refund and claim leg 1 as well.
MIN_TIME_TO_REVEAL = timedelta(hours=1)

# The initiator sets leg 1's deadline this share of the claim margin past what S2 needs: the participant
# reads leg 2's latest refund time from its own tip, later, and a slow block meanwhile moves that bound on.
S2_HEADROOM_SHARE = Fraction(1, 4)

# A claim this close to its deadline is flagged urgent: it outbids every other broadcast and fee bump,
# since missing the deadline loses the leg.
CLAIM_URGENT_WINDOW = timedelta(hours=2)


@dataclass(frozen=True, slots=True)
class Policy:
    """The safety distances one swap runs with; fixed when the swap is created and kept in its state.

    Local test chains run swaps in minutes and use a scaled-down policy; the defaults are for real chains.
    """

    leg1_claim_margin: timedelta = LEG1_CLAIM_MARGIN
    max_leg2_share: Fraction = MAX_LEG2_SHARE
    min_leg2_duration: timedelta = MIN_LEG2_DURATION
    min_leg2_window: timedelta = MIN_LEG2_WINDOW
    min_time_to_reveal: timedelta = MIN_TIME_TO_REVEAL
    claim_urgent_window: timedelta = CLAIM_URGENT_WINDOW

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("inconsistent timelock policy: " + "; ".join(problems))

    def problems(self) -> list[str]:
        problems: list[str] = []
        if not 0 < self.max_leg2_share < 1:
            problems.append(f"max_leg2_share must be between 0 and 1, got {self.max_leg2_share}")
        if self.min_time_to_reveal <= timedelta(0):
            problems.append("min_time_to_reveal must be positive")
        if self.min_leg2_window <= self.min_time_to_reveal:
            problems.append(
                "min_leg2_window must exceed min_time_to_reveal, or leg 2 locks too late to be claimed"
            )
        if self.min_leg2_duration < self.min_leg2_window:
            problems.append("min_leg2_duration must be at least min_leg2_window")
        if self.leg1_claim_margin <= timedelta(0):
            problems.append("leg1_claim_margin must be positive")
        return problems


DEFAULT_POLICY = Policy()


def check_durations(leg1: timedelta, leg2: timedelta, policy: Policy = DEFAULT_POLICY) -> list[str]:
    """Reasons the configured leg durations (from the moment of checking) are unsafe; empty if safe."""
    problems: list[str] = []
    if leg2 < policy.min_leg2_duration:
        problems.append(
            f"leg 2 lasts {leg2}, less than the minimum {policy.min_leg2_duration}: not enough time to lock "
            "both legs, reach finality and claim"
        )
    if leg2 * policy.max_leg2_share.denominator > leg1 * policy.max_leg2_share.numerator:
        problems.append(
            f"leg 2 lasts {leg2}, more than {policy.max_leg2_share} of leg 1's {leg1}: "
            "the participant would have too little of leg 1's window left to claim"
        )
    if leg1 - leg2 < policy.leg1_claim_margin:
        problems.append(
            f"leg 1 outlasts leg 2 by {leg1 - leg2}, less than the margin {policy.leg1_claim_margin} "
            "the participant needs to claim leg 1 after a last-minute reveal"
        )
    return problems


def s2_problems(terms: SwapTerms, policy: Policy = DEFAULT_POLICY) -> list[str]:
    """Why the secret could appear too late for the participant to claim leg 1 (S2); empty if it cannot.

    Terms stored before the latest refund time was kept have none: leg 2 could then open at any time, so
    nothing is locked on them (a swap already past its locks is unaffected).
    """
    latest = terms.leg2.latest
    if latest is None:
        return [
            "leg 2's latest refund time is unknown (terms stored by an older version): S2 cannot be checked"
        ]
    if latest + policy.leg1_claim_margin > terms.leg1.deadline:
        return [
            f"leg 2's refund may open as late as {latest.isoformat()}; plus the claim margin "
            f"{policy.leg1_claim_margin} that is after leg 1's deadline {terms.leg1.deadline.isoformat()}, "
            "when its refund may already open"
        ]
    return []


def check_timelocks(terms: SwapTerms, now: datetime, policy: Policy = DEFAULT_POLICY) -> list[str]:
    """Reasons the swap's deadlines are unsafe to commit funds to at ``now``; empty if safe.

    Checked before an offer is made or accepted and again before the initiator locks leg 1.
    """
    durations = check_durations(terms.leg1.deadline - now, terms.leg2.deadline - now, policy)
    return durations + s2_problems(terms, policy)


def check_leg2_lock(terms: SwapTerms, now: datetime, policy: Policy = DEFAULT_POLICY) -> list[str]:
    """Reasons the participant must not lock leg 2 at ``now`` (S2); empty if it may.

    The design's rule is ``leg 2 latest + margin <= leg 1 earliest``. Leg 2's timelock is agreed in the
    terms, so a lock made now opens for refund by leg 2's latest refund time at the latest: the secret can
    appear as late as that, and the margin must still fit before leg 1's deadline. Locking must also leave
    the initiator a real window to claim before leg 2's deadline (its reveal cut-off counts from there).
    """
    problems = s2_problems(terms, policy)
    left = terms.leg2.deadline - now
    if left < policy.min_leg2_window:
        problems.append(
            f"only {left} left before leg 2 deadline {terms.leg2.deadline.isoformat()}, less than the "
            f"{policy.min_leg2_window} the initiator needs to see it final and claim"
        )
    return problems


def leg1_deadline(
    now: datetime,
    leg1_duration: timedelta,
    leg2_deadline: datetime,
    leg2_latest: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> datetime:
    """The deadline the initiator gives leg 1: its configured duration, or later if the checks need it.

    A Bitcoin leg 2's latest refund time can be far past its deadline (a day's worth of blocks spans many
    hours at 1e-6), so a fixed leg 1 duration would not clear it (S2); the headroom lets the participant's
    own, later reading of the chain pass the same check. Leg 2's timelock is a whole number of blocks, so
    its deadline can come a little later than configured: leg 1 then lengthens to keep the share too.
    """
    margin = policy.leg1_claim_margin
    after_leg2 = leg2_latest + margin + margin * S2_HEADROOM_SHARE.numerator / S2_HEADROOM_SHARE.denominator
    share = policy.max_leg2_share
    for_share = now + (leg2_deadline - now) * share.denominator / share.numerator
    return max(now + leg1_duration, after_leg2, for_share)


def may_reveal(terms: SwapTerms, now: datetime, policy: Policy = DEFAULT_POLICY) -> bool:
    """Whether the initiator may still claim leg 2 (revealing the secret) at ``now``."""
    return now + policy.min_time_to_reveal <= terms.leg2.deadline


def claim_is_urgent(deadline: datetime, now: datetime, policy: Policy = DEFAULT_POLICY) -> bool:
    return now + policy.claim_urgent_window >= deadline
