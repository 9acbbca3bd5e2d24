"""A node that stops answering holds up only its own chain: the other chain's refunds and events go on.

Desk A's "usd" adapter is made to hang (every node call waits, for good: no timeout will end it), as a
paused node would. Signing and broadcasting run in one worker per chain, so only "usd"'s work waits.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from settlerd.engine import LegRequest
from settlerd.swap import Status

from .conftest import (
    ETH_AMOUNT,
    FINALITY,
    USD_AMOUNT,
    MakeDesk,
    World,
    request,
    status_of,
    stop,
    wait_for,
    wait_status,
)

ON_TIME_S = 2.0  # a due refund goes out within a few ticks (50 ms each) when nothing holds it up


async def test_a_hung_node_delays_only_its_own_chain(make_desk: MakeDesk, world: World) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    usd, eth = LegRequest("usd", "USD", USD_AMOUNT), LegRequest("eth", "ETH", ETH_AMOUNT)
    # Two swaps in which B never locks leg 2, so A refunds its leg 1 of each at the same deadline.
    offers = [
        await a.capture.create_offer(request(b, give=usd, get=eth)),
        await a.capture.create_offer(request(b, give=eth, get=usd)),
    ]
    acceptances = [await b.capture.accept_offer(offer) for offer in offers]
    await stop(b)
    stuck, on_time = (str(offer["swap_id"]) for offer in offers)
    for offer, acceptance in zip(offers, acceptances, strict=True):
        await a.capture.register_acceptance(offer["swap_id"], acceptance)
    await wait_for(lambda: _pending(world, "usd", "eth"))
    world.mine(FINALITY)
    for swap_id in (stuck, on_time):
        await wait_status(a, swap_id, Status.LEG1_FINAL)

    a.adapters["usd"].hang()
    world.advance(timedelta(minutes=61))  # both refunds are due

    loop = asyncio.get_running_loop()
    started = loop.time()
    await wait_status(a, on_time, Status.REFUNDING)
    assert loop.time() - started < ON_TIME_S
    await wait_for(lambda: _pending(world, "eth"))
    world.mine(FINALITY)  # the eth chain's events still arrive: the refund is seen and becomes final
    assert await wait_status(a, on_time, Status.REFUNDED) == Status.REFUNDED
    assert await status_of(a, stuck) == Status.LEG1_FINAL, "the usd node was meant to hang"
    assert world.chains["usd"].mempool == []

    a.adapters["usd"].unhang()  # the node answers again: the held-up refund goes out after all
    await wait_for(lambda: _pending(world, "usd"))
    world.mine(FINALITY)
    assert await wait_status(a, stuck, Status.REFUNDED) == Status.REFUNDED


async def _pending(world: World, *chains: str) -> bool:
    return all(world.chains[chain].mempool for chain in chains)
