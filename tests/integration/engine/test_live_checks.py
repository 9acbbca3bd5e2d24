"""The live chain has the last word before the reveal and before leg 2's lock (S1, S2).

The chain's time is moved ahead of the engines' clocks (anvil alone), as when blocks come faster than the
conversion at capture assumed: the stored deadlines still look fine, the chain's timelocks do not.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest

from settlerd.swap import Status
from tests.fixtures.anvil import Anvil

from .conftest import FINALITY, Clock, Desk, MakeDesk
from .test_settle import SETTLE_TIMEOUT_S, status_of, trade, wait_status

LOGGER = "settlerd.engine.live_checks"


def run_chain_ahead(anvil: Anvil, by: timedelta) -> None:
    """Anvil's time jumps ahead (one block at the new time); the engines' clocks stay where they were."""
    anvil.rpc("evm_increaseTime", int(by.total_seconds()))
    anvil.rpc("evm_mine")


async def wait_confirmations(desk: Desk, swap_id: str, leg: int, confirmations: int) -> None:
    # The lock is mined at once (anvil automines) and the engine must have seen it before the chain moves.
    while True:
        legs = {row.leg: row for row in await desk.store.legs_of(swap_id)}
        if legs[leg].confirmations >= confirmations:
            return
        await asyncio.sleep(0.1)


async def test_participant_refuses_leg2_when_leg1_chain_ran_ahead(
    make_desk: MakeDesk, anvil: Anvil, token: Any
) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    swap_id = await trade(a, b, token)
    await asyncio.wait_for(wait_confirmations(b, swap_id, 1, 1), SETTLE_TIMEOUT_S)
    assert await b.store.signed_txs(swap_id=swap_id) == []

    # Leg 1 lasts 60 minutes, leg 2 30 and the claim margin is 15: with leg 1's chain 20 minutes ahead,
    # its refund opens 40 minutes from now, before leg 2's deadline plus the margin (45 minutes).
    run_chain_ahead(anvil, timedelta(minutes=20))  # this block also makes leg 1 final

    assert await wait_status(b, swap_id, Status.CANCELLED) == Status.CANCELLED
    assert await b.store.signed_txs(swap_id=swap_id) == []
    events = await b.store.events(swap_id=swap_id, limit=None)
    refused = [e for e in events if e.kind == "lock_refused"]
    assert len(refused) == 1
    assert "leg 1's refund on eth" in refused[0].payload["event"]["reason"]
    assert {leg.leg: leg.lock_txid for leg in await b.store.legs_of(swap_id)}[2] is None


async def test_initiator_keeps_the_secret_when_leg2_chain_ran_ahead(
    make_desk: MakeDesk,
    anvil: Anvil,
    token: Any,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    swap_id = await trade(a, b, token)
    await asyncio.wait_for(wait_confirmations(b, swap_id, 1, 1), SETTLE_TIMEOUT_S)
    anvil.rpc("evm_mine")  # leg 1 final: the participant locks leg 2
    await asyncio.wait_for(wait_confirmations(a, swap_id, 2, 1), SETTLE_TIMEOUT_S)

    # Leg 2's chain runs 29 of its 30 minutes ahead: by the engine's clock the reveal is still allowed,
    # by the chain leg 2's refund opens within the 2 minutes the initiator's claim needs.
    run_chain_ahead(anvil, timedelta(minutes=29))  # this block also makes leg 2 final
    await asyncio.wait_for(held_back(caplog, swap_id, 1), SETTLE_TIMEOUT_S)
    # More ticks look again and hold back each time, with no further warning for the swap.
    for _ in range(3):
        await a.engine.tick()
    [warning] = await held_back(caplog, swap_id, 1)
    assert "the secret stays hidden and leg 1 will be refunded" in warning
    assert await status_of(a, swap_id) == Status.LEG2_FINAL
    assert not [t for t in await a.store.signed_txs(swap_id=swap_id) if t.purpose == "claim"]

    clock.advance(timedelta(minutes=61))  # both clocks past leg 1's deadline: the initiator refunds
    # The participant's own refund of leg 2 (a block of its own) may already have made it final.
    await wait_status(a, swap_id, Status.REFUNDING, Status.REFUNDED)
    for _ in range(FINALITY):
        anvil.rpc("evm_mine")

    assert await wait_status(a, swap_id, Status.REFUNDED) == Status.REFUNDED
    events = await a.store.events(swap_id=swap_id, limit=None)
    assert "claim_broadcast" not in {e.kind for e in events}
    journal = await a.store.signed_txs(swap_id=swap_id)
    assert sorted(t.purpose for t in journal) == ["lock", "refund"]
    assert {leg.leg: leg.claim_txid for leg in await a.store.legs_of(swap_id)} == {1: None, 2: None}


async def held_back(caplog: pytest.LogCaptureFixture, swap_id: str, at_least: int) -> list[str]:
    """The live check's warnings about ``swap_id``, once there are ``at_least`` of them."""
    while True:
        found = [r.getMessage() for r in caplog.records if r.name == LOGGER and swap_id in r.getMessage()]
        if len(found) >= at_least:
            return found
        await asyncio.sleep(0.1)
