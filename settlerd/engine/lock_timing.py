"""Whether a lock may still go out now: the state machine's timing checks, run again at the engine's clock.

The state machine asks for a lock when a step finds the terms safe at that step's time. The lock is built
and broadcast later, by its chain's worker, after whatever a slow or dead node costs. If the window to
lock closed meanwhile, the counterparty may already have given up on the swap: a lock sent then is only
ever refunded, at two fees and with the funds held for the whole leg. So these checks run right before a
lock is built and again right before it is broadcast; for leg 2 the live chain has its say too.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from settlerd.swap import Leg, SwapState
from settlerd.swap.policy import check_leg2_lock, check_timelocks

from .live_checks import LiveChecks
from .ports import Clock

# Leg 2's live check reads leg 1's chain from leg 2's worker, ahead of that chain's queued claims and
# refunds: a node of another chain that hangs may hold them this long at most; the lock is tried next tick.
LIVE_CHECK_TIMEOUT = timedelta(seconds=5)


class LockTiming:
    def __init__(self, clock: Clock, live_checks: LiveChecks) -> None:
        self._clock = clock
        self._live_checks = live_checks

    async def refusal(self, state: SwapState, leg: Leg) -> str | None:
        """Why ``leg`` must not be locked now, or None. Leg 1 is the initiator's lock, leg 2 the
        participant's: each gets the check the state machine decided it with (S2 for leg 2)."""
        now = self._clock()
        if leg is Leg.ONE:
            reasons = check_timelocks(state.terms, now, state.policy)
        else:
            reasons = check_leg2_lock(state.terms, now, state.policy)
        if reasons:
            return f"the window to lock leg {leg} closed before the lock went out: " + "; ".join(reasons)
        if leg is Leg.TWO:
            try:
                async with asyncio.timeout(LIVE_CHECK_TIMEOUT.total_seconds()):
                    return await self._live_checks.leg2_lock_refusal(state)
            except TimeoutError:
                one, two = state.terms.leg1.chain, state.terms.leg2.chain
                raise TimeoutError(
                    f"the live check of leg 2's lock had no answer from the nodes of {one} and {two} "
                    f"within {LIVE_CHECK_TIMEOUT}; the lock waits"
                ) from None
        return None
