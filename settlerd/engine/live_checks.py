"""The last look at the live chain before the two irreversible steps of a swap (S1, S2).

Deadlines of height-locked legs were converted to wall-clock time once, at capture, and the state machine
decides from those stored deadlines. If blocks came faster than assumed, a timelock can open before its
stored deadline. So right before the initiator reveals the secret (its claim of leg 2) and before the
participant locks leg 2, the engine asks each adapter how long the relevant refund really stays closed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from settlerd.swap import SwapState

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("settlerd.engine.live_checks")


class LiveChecks:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._warned: set[str] = set()  # swaps whose withheld reveal was already reported

    async def may_reveal(self, state: SwapState) -> bool:
        """Whether leg 2's refund stays closed long enough for our claim (the reveal) to confirm first.

        A refusal leaves the claim requested: every tick looks again, and the swap ends by leg 1's refund.
        """
        terms = state.terms.leg2
        left = await self._engine.adapters[terms.chain].time_left(terms.timelock)
        if left >= state.policy.min_time_to_reveal:
            return True
        if state.swap_id not in self._warned:
            # Ended swaps leave the set whenever another one joins it.
            self._warned = (self._warned & set(self._engine.live_ids())) | {state.swap_id}
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
        """Why the participant must not lock leg 2 now, judged by leg 1's chain: None if it may.

        The secret can appear as late as leg 2's deadline; leg 1 must then stay unrefundable for the margin
        the participant needs to get its claim of leg 1 confirmed.
        """
        terms = state.terms.leg1
        left = await self._engine.adapters[terms.chain].time_left(terms.timelock)
        needed = state.terms.leg2.deadline - self._engine.clock() + state.policy.leg1_claim_margin
        if left >= needed:
            return None
        return (
            f"leg 1's refund on {terms.chain} may be valid in {left} by the chain's tip, less than the "
            f"{needed} until leg 2's deadline plus the claim margin {state.policy.leg1_claim_margin}: "
            "its chain ran ahead of the deadline stored at capture"
        )
