"""Whether a lock may still go out now: the state machine's timing checks, run again at the engine's clock.

The state machine asks for a lock when a step finds the terms safe at that step's time. The lock is built
and broadcast later, by its chain's worker, after whatever a slow or dead node costs. If the window to
lock closed meanwhile, the counterparty may already have given up on the swap: a lock sent then is only
ever refunded, at two fees and with the funds held for the whole leg. So these checks run right before a
lock is built and again right before it is broadcast; for leg 2 the live chain has its say too.
"""

from __future__ import annotations

from settlerd.swap import Leg, SwapState
from settlerd.swap.policy import check_leg2_lock, check_timelocks

from .live_checks import LiveChecks
from .ports import Clock


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
            return await self._live_checks.leg2_lock_refusal(state)
        return None
