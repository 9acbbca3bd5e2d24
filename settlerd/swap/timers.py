"""When time alone can next change a swap: the key of the engine's deadline heap.

``decide`` and ``derive_status`` read the clock only by comparing it with a few moments fixed by the
terms and the policy (the leg deadlines, minus the policy's safety distances). Between two of those
moments a tick changes nothing but the swap's clock, so the engine steps a swap on a tick only once
the earliest of them after the swap's own time has come. The property tests check that a tick before
``next_deadline`` is a no-op.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .state import SwapState
from .status import is_terminal

# Comparisons with a moment are made both ways (``now >= deadline``, ``now + d <= deadline``): the
# second flips one tick of the clock after the moment, so each moment is also due again just after it.
_RESOLUTION = timedelta(microseconds=1)


def _moments(state: SwapState) -> list[datetime]:
    policy, leg1, leg2 = state.policy, state.terms.leg1.deadline, state.terms.leg2.deadline
    share = policy.max_leg2_share
    return [
        leg1,  # the participant's refund, and its failure once leg 1 is gone unlocked
        leg2,  # the initiator's refund is leg 1's; leg 2 unclaimed by then has failed
        leg2 - policy.min_leg2_duration,  # an offer or a lock of leg 1 comes too late
        leg2 - policy.min_leg2_window,  # too late to lock leg 2
        leg2 - policy.min_time_to_reveal,  # too late to reveal the secret
        leg1 - policy.claim_urgent_window,  # a claim of leg 1 asked from here on is urgent
        leg2 - policy.claim_urgent_window,  # likewise for leg 2
        # Where leg 2's share of the time left crosses the policy's maximum (``check_durations``).
        leg2 + (leg2 - leg1) * share.numerator / (share.denominator - share.numerator),
    ]


def next_deadline(state: SwapState) -> datetime | None:
    """The earliest moment after the swap's clock at which a tick may change it; None if none will."""
    if is_terminal(state.status):
        return None
    after = state.now
    due = [m for moment in _moments(state) for m in (moment, moment + _RESOLUTION) if m > after]
    return min(due, default=None)
