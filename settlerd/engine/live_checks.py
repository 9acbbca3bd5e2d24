"""The last look at the live chain before the two irreversible steps of a swap (S1, S2).

Timelocks were converted to wall-clock bounds once, at capture, and the state machine decides from those
stored bounds. The chain moves on since: a height timelock's bounds from the live tip are narrower, and
can have shifted either way. So right before the initiator reveals the secret (its claim of leg 2) and
before the participant locks leg 2, the engine asks each adapter again, and compares the bounds against us:
leg 2's earliest for the reveal, leg 2's latest against leg 1's earliest for the lock (S2).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from settlerd.adapters import ChainAdapter
from settlerd.swap import SwapState

from .ports import Clock, LiveSwaps

log = logging.getLogger("settlerd.engine.live_checks")


class LiveChecks:
    def __init__(self, adapters: Mapping[str, ChainAdapter], clock: Clock, live: LiveSwaps) -> None:
        self._adapters = adapters
        self._clock = clock
        self._live = live
        self._warned: set[str] = set()  # swaps whose withheld reveal was already reported

    async def may_reveal(self, state: SwapState) -> bool:
        """Whether leg 2's refund stays closed long enough for our claim (the reveal) to confirm first.

        A refusal leaves the claim requested: every tick looks again, and the swap ends by leg 1's refund.
        """
        terms = state.terms.leg2
        left = (await self._adapters[terms.chain].time_left(terms.timelock)).earliest
        if left >= state.policy.min_time_to_reveal:
            return True
        if state.swap_id not in self._warned:
            # Ended swaps leave the set whenever another one joins it.
            self._warned = (self._warned & set(self._live)) | {state.swap_id}
            log.warning(
                "swap %s: leg 2's refund on %s may be valid in %s by the chain's tip, less than the %s our "
                "claim needs; the secret stays hidden and leg 1 will be refunded after %s",
                state.swap_id,
                terms.chain,
                left,
                state.policy.min_time_to_reveal,
                state.terms.leg1.deadline.isoformat(),
                extra={"swap_id": state.swap_id},
            )
        return False

    async def leg2_lock_refusal(self, state: SwapState) -> str | None:
        """Why the participant must not lock leg 2 now, judged by both chains' live tips: None if it may.

        The secret can appear as late as leg 2's latest refund time (the later of the stored and the live
        reading); leg 1 must then stay unrefundable for the margin the participant needs to get its claim
        of leg 1 confirmed, counted from leg 1's earliest refund time by its chain's live tip.
        """
        one, two = state.terms.leg1, state.terms.leg2
        adapters = self._adapters
        leg1_left = (await adapters[one.chain].time_left(one.timelock)).earliest
        leg2_left = (await adapters[two.chain].time_left(two.timelock)).latest
        now = self._clock()
        if two.latest is not None:
            leg2_left = max(leg2_left, two.latest - now)
        needed = leg2_left + state.policy.leg1_claim_margin
        if leg1_left >= needed:
            return None
        return (
            f"leg 1's refund on {one.chain} may open in {leg1_left} by the chain's tip, less than the "
            f"{needed} until leg 2's refund on {two.chain} has surely opened plus the claim margin "
            f"{state.policy.leg1_claim_margin}: the chains moved against the bounds stored at capture"
        )
