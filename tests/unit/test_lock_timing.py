"""The timing checks run again right before a lock: the policy at the engine's clock, and for leg 2 the
live chains, whose nodes may hold the chain's worker for a bounded time only."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from settlerd.adapters import TimeLeft
from settlerd.engine import lock_timing
from settlerd.engine.live_checks import LiveChecks
from settlerd.engine.lock_timing import LockTiming
from settlerd.swap import Leg, Role, SwapState

from .test_swap_model import T0
from .test_swap_safety import accepted

H = timedelta(hours=1)


class Node:
    """The one node call the live check makes; ``hung`` never answers."""

    def __init__(self, left: timedelta, *, hung: bool = False) -> None:
        self._left = left
        self._hung = hung

    async def time_left(self, timelock: int) -> TimeLeft:
        if self._hung:
            await asyncio.Event().wait()
        return TimeLeft(earliest=self._left, latest=self._left, probability=0.0)


def timing(state: SwapState, now: datetime, **nodes: Node) -> LockTiming:
    adapters: dict[str, Any] = {state.terms.leg1.chain: nodes["one"], state.terms.leg2.chain: nodes["two"]}
    return LockTiming(lambda: now, LiveChecks(adapters, lambda: now, {}))


async def test_leg2_may_be_locked_while_its_window_is_open() -> None:
    state = accepted(Role.PARTICIPANT)
    left = state.terms.leg1.deadline - T0
    check = timing(state, T0 + H, one=Node(left), two=Node(state.terms.leg2.deadline - T0))
    assert await check.refusal(state, Leg.TWO) is None


async def test_a_lock_whose_window_closed_is_refused_without_asking_a_node() -> None:
    state = accepted(Role.PARTICIPANT)
    late = state.terms.leg2.deadline - state.policy.min_leg2_window / 2
    check = timing(state, late, one=Node(H, hung=True), two=Node(H, hung=True))
    reason = await asyncio.wait_for(check.refusal(state, Leg.TWO), 1.0)
    assert reason is not None and reason.startswith("the window to lock leg 2 closed")
    initiator = accepted(Role.INITIATOR)
    check = timing(initiator, initiator.terms.leg2.deadline, one=Node(H), two=Node(H))
    reason = await check.refusal(initiator, Leg.ONE)
    assert reason is not None and reason.startswith("the window to lock leg 1 closed")


async def test_a_hung_node_holds_leg2s_live_check_for_a_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock_timing, "LIVE_CHECK_TIMEOUT", timedelta(seconds=0.2))
    state = accepted(Role.PARTICIPANT)
    check = timing(state, T0 + H, one=Node(H, hung=True), two=Node(H))
    with pytest.raises(TimeoutError, match="the lock waits"):
        await asyncio.wait_for(check.refusal(state, Leg.TWO), 2.0)
