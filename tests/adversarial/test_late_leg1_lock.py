"""Attack: leg 1 locked after the window to lock it closed (issue 11).

The initiator's node goes down right after the acceptance, so its lock of leg 1 cannot be built. While
it is down, the swap's window passes: the participant gives up (too little of leg 2's window is left to
lock it). Once the node is back, the initiator used to build and broadcast leg 1 all the same, then
refund it at its deadline: two fees, and the funds held for the whole leg. The timing checks now run
again right before a lock is built (and right before it is broadcast): the initiator gives up too.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from web3 import AsyncWeb3

from settlerd.engine import LegRequest, OfferRequest
from settlerd.swap import Status
from tests.fixtures.node_gate import NodeGate
from tests.integration.engine.conftest import (
    Clock,
    MakeDesk,
    clock,
    fresh_keys,
    gate,
    htlc_address,
    make_desk,
    miner,
    token,
    w3,
)
from tests.integration.engine.test_settle import ETH_AMOUNT, TOKEN_AMOUNT, wait_status

__all__ = ["clock", "fresh_keys", "gate", "htlc_address", "make_desk", "miner", "token", "w3"]

# Leg 2 lasts 30 minutes and the policy wants at least 10 of them left before leg 1 is locked (and 5
# before leg 2 is): 26 minutes later neither desk may lock any more.
OUTAGE = timedelta(minutes=26)
# Long enough for a few of the initiator's ticks to fail against the dead node.
FAILING_TICKS_S = 1.5
# How much longer the node stays down: an attempt to lock under way when the window closed fails within
# about 2 s (web3 retries a refused connection with backoff), and the next tick's attempt is refused.
OUTAGE_REST_S = 15.0


async def test_no_leg1_lock_once_its_window_closed_while_the_node_was_down(
    make_desk: MakeDesk, miner: None, token: Any, w3: AsyncWeb3, clock: Clock, gate: NodeGate
) -> None:
    a = await make_desk("desk-a", rpc_urls={"eth": gate.url})
    b = await make_desk("desk-b")
    give, get = LegRequest("eth", "ETH", ETH_AMOUNT), LegRequest("usd", token.address, TOKEN_AMOUNT)
    offer = await a.capture.create_offer(OfferRequest(b.name, give, get))
    acceptance = await b.capture.accept_offer(offer)
    swap_id = str(offer["swap_id"])
    balance = await w3.eth.get_balance(a.address("eth"))
    nonce = await w3.eth.get_transaction_count(a.address("eth"))

    await gate.down()  # the initiator's leg 1 node goes away as the swap is accepted
    await a.capture.register_acceptance(swap_id, acceptance)
    await asyncio.sleep(FAILING_TICKS_S)
    clock.advance(OUTAGE)
    # The participant's window to lock leg 2 passed during the outage: it gives up.
    assert await wait_status(b, swap_id, Status.CANCELLED) == Status.CANCELLED
    # So does the initiator, node or no node, once an attempt to lock finds the window closed.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wait_status(a, swap_id, Status.CANCELLED), OUTAGE_REST_S)
    await gate.open()

    locked = (Status.LEG1_LOCKING, Status.LEG1_LOCKED, Status.LEG1_FINAL)
    ended = await wait_status(a, swap_id, Status.CANCELLED, *locked)
    assert ended == Status.CANCELLED, "the initiator locked leg 1 after its window had closed"
    events = await a.store.events(swap_id=swap_id, limit=None)
    [refused] = [e for e in events if e.kind == "lock_refused"]
    assert "window to lock leg 1 closed" in refused.payload["event"]["reason"]
    assert "lock_broadcast" not in {e.kind for e in events}
    assert not [t for t in await a.store.signed_txs(swap_id=swap_id) if t.status != "dropped"]
    # Nothing of leg 1 reached the chain: no transaction sent from the initiator's account.
    await asyncio.sleep(1.0)  # a lock sent at the last moment would be mined by now (automine)
    assert await w3.eth.get_transaction_count(a.address("eth")) == nonce
    assert await w3.eth.get_balance(a.address("eth")) == balance
