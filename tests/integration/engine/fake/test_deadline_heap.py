"""A tick steps the swaps whose deadline has come, and no other: its cost follows what came due.

Offers that are never accepted expire when too little of leg 2 is left to lock both legs
(``min_leg2_duration``): that is a deadline with nothing on chain to announce it, so only the tick
can end them. Offers made at two times expire at two times; each tick must step exactly those due.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from settlerd import swap
from settlerd.swap import Status

from .conftest import POLICY, Desk, MakeDesk, World, request, wait_status

OFFERS = 5


async def _halt(desk: Desk) -> None:
    """Stop the desk's engine and chain loops, keeping its store open (the fixture closes it)."""
    assert desk.task is not None
    desk.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await desk.task


async def _offers(a: Desk, b: Desk) -> list[str]:
    return [str((await a.capture.create_offer(request(b)))["swap_id"]) for _ in range(OFFERS)]


async def test_a_tick_steps_only_the_swaps_whose_deadline_came(make_desk: MakeDesk, world: World) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    await _halt(a)  # the test ticks desk A's engine itself, so it counts every step
    first = await _offers(a, b)
    world.now += timedelta(minutes=5)
    second = await _offers(a, b)
    stepped: list[str] = []
    apply = a.engine.apply

    async def counting(swap_id: str, event: swap.Event, *, txid: str | None = None) -> swap.Step:
        stepped.append(swap_id)
        return await apply(swap_id, event, txid=txid)

    a.engine.apply = counting  # type: ignore[method-assign]
    await a.engine.tick()
    assert stepped == []

    # Leg 2 lasts about 30 minutes from its offer (whole blocks): the first offers expire some 20
    # minutes in, when less than ``min_leg2_duration`` of it is left; the second ones 5 minutes later.
    assert POLICY.min_leg2_duration == timedelta(minutes=10)
    world.now += timedelta(minutes=13)
    await a.engine.tick()
    assert stepped == []
    world.now += timedelta(minutes=4)
    await a.engine.tick()
    assert sorted(stepped) == sorted(first)
    assert sorted(a.engine.live_ids()) == sorted(second)

    stepped.clear()
    world.now += timedelta(minutes=10)
    await a.engine.tick()
    assert sorted(stepped) == sorted(second)
    assert a.engine.live_ids() == []
    for swap_id in first + second:
        assert await wait_status(a, swap_id, Status.CANCELLED) == Status.CANCELLED
