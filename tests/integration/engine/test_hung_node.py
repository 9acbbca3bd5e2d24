"""A node that hangs delays only its own chain: every other chain's events, claims and refunds go on time.

Desk A's "usd" node is put behind a proxy that accepts requests and never answers, as a paused node
does (web3 waits 30 s per call, and retries). Signing and broadcasting run in one worker per chain, so
what waits on that node is only "usd"'s own work.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from settlerd.engine import LegRequest, OfferRequest
from settlerd.swap import Status
from tests.fixtures.node_gate import NodeGate
from tests.fixtures.timeouts import TIMEOUT_FACTOR

from .conftest import Clock, Desk, MakeDesk, stop
from .test_settle import ETH_AMOUNT, SETTLE_TIMEOUT_S, TOKEN_AMOUNT, status_of, wait_status

# A due spend goes out on the next tick (0.3 s here) plus the time to build and send it; a chain held up
# by another chain's node would take at least web3's 30 s timeout.
ON_TIME_S = 2.0 * TIMEOUT_FACTOR
POLL_S = 0.05


async def seconds_until(desk: Desk, swap_id: str, *wanted: Status) -> float:
    """How long until ``swap_id`` reaches one of ``wanted`` (polled); fails after the settle timeout."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.wait_for(_reached(desk, swap_id, wanted), SETTLE_TIMEOUT_S)
    return loop.time() - start


async def _reached(desk: Desk, swap_id: str, wanted: tuple[Status, ...]) -> None:
    while True:
        if await status_of(desk, swap_id) in wanted:
            return
        await asyncio.sleep(POLL_S)


async def test_a_hung_node_delays_only_its_own_chain(
    make_desk: MakeDesk, miner: None, token: Any, clock: Clock, gate: NodeGate
) -> None:
    a = await make_desk("desk-a", rpc_urls={"usd": gate.url})
    b = await make_desk("desk-b")
    # Two swaps in which B never locks leg 2, so A refunds its leg 1 of each at the same deadline: first
    # the one on "usd" (its tick comes first), then the one on "eth".
    usd, eth = LegRequest("usd", token.address, TOKEN_AMOUNT), LegRequest("eth", "ETH", ETH_AMOUNT)
    offers = [
        await a.capture.create_offer(OfferRequest(b.name, usd, eth)),
        await a.capture.create_offer(OfferRequest(b.name, eth, usd)),
    ]
    acceptances = [await b.capture.accept_offer(offer) for offer in offers]
    await stop(b)
    stuck, on_time = (str(offer["swap_id"]) for offer in offers)
    for offer, acceptance in zip(offers, acceptances, strict=True):
        await a.capture.register_acceptance(offer["swap_id"], acceptance)
        await wait_status(a, offer["swap_id"], Status.LEG1_FINAL)

    gate.hang()
    clock.advance(timedelta(minutes=61))  # both refunds are due, the "usd" one first

    assert await seconds_until(a, on_time, Status.REFUNDING, Status.REFUNDED) < ON_TIME_S
    # Its chain's events still arrive: the refund is seen and becomes final.
    assert await seconds_until(a, on_time, Status.REFUNDED) < ON_TIME_S + SETTLE_TIMEOUT_S / 6
    assert await status_of(a, stuck) == Status.LEG1_FINAL, "the usd node was meant to hang"

    # A whole swap on "eth" alone, with its locks and both claims, settles while "usd" still hangs.
    c = await make_desk("desk-c")
    offer = await a.capture.create_offer(
        OfferRequest(c.name, eth, LegRequest("eth", token.address, TOKEN_AMOUNT))
    )
    await a.capture.register_acceptance(offer["swap_id"], await c.capture.accept_offer(offer))
    assert await wait_status(a, offer["swap_id"], Status.COMPLETED) == Status.COMPLETED
    assert await wait_status(c, offer["swap_id"], Status.COMPLETED) == Status.COMPLETED
    assert await status_of(a, stuck) == Status.LEG1_FINAL

    await gate.open()  # the node answers again: the held-up refund goes out after all
    assert await wait_status(a, stuck, Status.REFUNDED) == Status.REFUNDED
