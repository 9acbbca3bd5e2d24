"""The live chain has the last word before the reveal and before leg 2's lock (S1, S2), on fake chains.

One fake chain runs ahead of the engines' clock, as when blocks come faster than the conversion at capture
assumed: the stored deadlines still look fine, the chain's timelocks do not.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from settlerd.swap import Status

from .conftest import FINALITY, Desk, MakeDesk, World, status_of, trade, wait_for, wait_status

LOGGER = "settlerd.engine.live_checks"


def seen_at(desk: Desk, swap_id: str, leg: int, confirmations: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        legs = {row.leg: row for row in await desk.store.legs_of(swap_id)}
        return legs[leg].confirmations >= confirmations

    return check


async def test_participant_refuses_leg2_when_leg1_chain_ran_ahead(make_desk: MakeDesk, world: World) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    swap_id = await trade(a, b)
    await wait_for(lambda: _pending(world, "eth"))
    world.mine(1)
    await wait_for(seen_at(b, swap_id, 1, 1))
    assert await b.store.signed_txs(swap_id=swap_id) == []

    # Leg 1 lasts 60 minutes, leg 2 30 and the claim margin is 15: with leg 1's chain 20 minutes ahead,
    # its refund opens 40 minutes from now, before leg 2's deadline plus the margin (45 minutes).
    world.run_ahead("eth", timedelta(minutes=20))  # these blocks also make leg 1 final

    assert await wait_status(b, swap_id, Status.CANCELLED) == Status.CANCELLED
    assert await b.store.signed_txs(swap_id=swap_id) == []
    events = await b.store.events(swap_id=swap_id, limit=None)
    refused = [e for e in events if e.kind == "lock_refused"]
    assert len(refused) == 1
    assert "leg 1's refund on eth" in refused[0].payload["event"]["reason"]
    assert {leg.leg: leg.lock_txid for leg in await b.store.legs_of(swap_id)}[2] is None


async def test_participant_locks_leg2_when_the_chains_keep_time(make_desk: MakeDesk, world: World) -> None:
    """The control of the test above: the same swap, with no chain ahead, gets its leg 2."""
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    swap_id = await trade(a, b)
    await wait_for(lambda: _pending(world, "eth"))
    world.mine(FINALITY)
    assert await wait_status(b, swap_id, Status.LEG2_LOCKING, Status.LEG2_LOCKED) in (
        Status.LEG2_LOCKING,
        Status.LEG2_LOCKED,
    )


async def test_initiator_keeps_the_secret_when_leg2_chain_ran_ahead(
    make_desk: MakeDesk, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    swap_id = await trade(a, b)
    await wait_for(lambda: _pending(world, "eth"))
    world.mine(FINALITY)  # leg 1 final: the participant locks leg 2
    await wait_for(lambda: _pending(world, "usd"))
    world.mine(1)
    await wait_for(seen_at(a, swap_id, 2, 1))

    # Leg 2's chain runs 29 of its 30 minutes ahead: by the engine's clock the reveal is still allowed,
    # by the chain leg 2's refund opens within the 2 minutes the initiator's claim needs.
    world.run_ahead("usd", timedelta(minutes=29))  # these blocks also make leg 2 final
    await wait_for(lambda: _held_back(caplog, swap_id))
    for _ in range(3):  # more ticks look again and hold back each time, with no further warning
        await a.engine.tick()
    [warning] = [r.getMessage() for r in caplog.records if r.name == LOGGER and swap_id in r.getMessage()]
    assert "the secret stays hidden and leg 1 will be refunded" in warning
    assert await status_of(a, swap_id) == Status.LEG2_FINAL
    assert not [t for t in await a.store.signed_txs(swap_id=swap_id) if t.purpose == "claim"]

    world.advance(timedelta(minutes=61))  # both clocks past leg 1's deadline: the initiator refunds
    await wait_status(a, swap_id, Status.REFUNDING, Status.REFUNDED)
    await wait_for(lambda: _pending(world, "eth"))
    world.mine(FINALITY)

    assert await wait_status(a, swap_id, Status.REFUNDED) == Status.REFUNDED
    events = await a.store.events(swap_id=swap_id, limit=None)
    assert "claim_broadcast" not in {e.kind for e in events}
    journal = await a.store.signed_txs(swap_id=swap_id)
    assert sorted(t.purpose for t in journal) == ["lock", "refund"]
    assert {leg.leg: leg.claim_txid for leg in await a.store.legs_of(swap_id)} == {1: None, 2: None}


async def _pending(world: World, chain: str) -> bool:
    return bool(world.chains[chain].mempool)


async def _held_back(caplog: pytest.LogCaptureFixture, swap_id: str) -> bool:
    return any(r.name == LOGGER and swap_id in r.getMessage() for r in caplog.records)
