"""Two engines settle ETH for USD on fake chains: the happy path, the refund paths, restarts and reorgs."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from settlerd.store.rows import UNCONFIRMED
from settlerd.swap import Status

from .conftest import (
    ETH_AMOUNT,
    FINALITY,
    FUNDS,
    USD_AMOUNT,
    MakeDesk,
    World,
    request,
    stop,
    trade,
    wait_for,
    wait_status,
)


async def test_a_swap_settles_on_both_sides(make_desk: MakeDesk, world: World, miner: None) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    swap_id = await trade(a, b)

    assert await wait_status(a, swap_id, Status.COMPLETED) == Status.COMPLETED
    assert await wait_status(b, swap_id, Status.COMPLETED) == Status.COMPLETED
    eth, usd = world.chains["eth"], world.chains["usd"]
    assert usd.balance(a.adapters["usd"].account, "USD") == FUNDS + USD_AMOUNT
    assert eth.balance(b.adapters["eth"].account, "ETH") == FUNDS + ETH_AMOUNT - eth.fee_rate
    for desk in (a, b):
        legs = {leg.leg: leg for leg in await desk.store.legs_of(swap_id)}
        assert all(leg.lock_txid and leg.claim_txid for leg in legs.values()), (desk.name, legs)
        journal = await desk.store.signed_txs(swap_id=swap_id)
        assert not [t for t in journal if t.status in UNCONFIRMED], journal
        assert sorted(t.purpose for t in journal) == ["claim", "lock"]


async def test_participant_never_locks_so_the_initiator_refunds(make_desk: MakeDesk, world: World) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    offer = await a.capture.create_offer(request(b))
    acceptance = await b.capture.accept_offer(offer)
    await stop(b)  # the participant goes away before it could lock leg 2
    swap_id = str(offer["swap_id"])
    await a.capture.register_acceptance(swap_id, acceptance)
    await wait_for(lambda: _mempool_has(world, "eth", 1))
    world.mine(2)
    await wait_status(a, swap_id, Status.LEG1_FINAL)

    world.advance(timedelta(minutes=61))  # past leg 1's deadline
    await wait_for(lambda: _mempool_has(world, "eth", 1))
    world.mine(FINALITY)

    assert await wait_status(a, swap_id, Status.REFUNDED) == Status.REFUNDED
    eth = world.chains["eth"]
    assert eth.balance(a.adapters["eth"].account, "ETH") == FUNDS - 2 * eth.fee_rate
    legs = {leg.leg: leg for leg in await a.store.legs_of(swap_id)}
    assert legs[1].refund_txid and legs[1].claim_txid is None and legs[2].lock_txid is None


async def test_initiator_never_claims_so_both_refund(make_desk: MakeDesk, world: World, miner: None) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    swap_id = await trade(a, b)
    await wait_status(a, swap_id, Status.LEG1_LOCKED, Status.LEG1_FINAL)
    await stop(a)  # the initiator dies before it can claim leg 2
    await wait_status(b, swap_id, Status.LEG2_FINAL)

    world.advance(timedelta(minutes=31))  # past leg 2's deadline: the participant refunds
    await wait_status(b, swap_id, Status.REFUNDING, Status.REFUNDED)
    world.advance(timedelta(minutes=30))  # past leg 1's deadline: the initiator, restarted, refunds
    a = await make_desk("desk-a", like=a)

    assert await wait_status(a, swap_id, Status.REFUNDED) == Status.REFUNDED
    assert await wait_status(b, swap_id, Status.REFUNDED) == Status.REFUNDED
    usd = world.chains["usd"]
    assert usd.balance(b.adapters["usd"].account, "USD") == FUNDS
    assert all(leg.claim_txid is None for leg in await a.store.legs_of(swap_id))


async def test_initiator_restarted_mid_swap_resumes_and_completes(make_desk: MakeDesk, miner: None) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    swap_id = await trade(a, b)
    await wait_status(a, swap_id, Status.LEG1_LOCKING, Status.LEG1_LOCKED, Status.LEG1_FINAL)
    await stop(a)
    a = await make_desk("desk-a", like=a)

    assert await wait_status(a, swap_id, Status.COMPLETED) == Status.COMPLETED
    assert await wait_status(b, swap_id, Status.COMPLETED) == Status.COMPLETED
    locks = [t for t in await a.store.signed_txs(swap_id=swap_id) if t.purpose == "lock"]
    assert len(locks) == 1, "a restart must never fund the same leg twice"


async def test_a_lock_dropped_by_a_reorg_is_rebroadcast_from_the_journal(
    make_desk: MakeDesk, world: World
) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    swap_id = await trade(a, b)
    await wait_for(lambda: _mempool_has(world, "eth", 1))
    world.mine(1)
    await wait_status(b, swap_id, Status.LEG1_LOCKED)
    [lock] = [t for t in await a.store.signed_txs(swap_id=swap_id) if t.purpose == "lock"]

    world.chains["eth"].reorg(1, drop=[lock.txid])  # leg 1's lock vanishes from the chain and the mempool

    await wait_status(b, swap_id, Status.ACCEPTED)  # S5: only a reorg moves a status back
    events = await b.store.events(swap_id=swap_id, limit=None)
    assert [e for e in events if e.kind == "reorg"], [e.kind for e in events]
    # A's chain loop finds its journaled lock missing and sends the same transaction again (S4).
    await wait_for(lambda: _mempool_has(world, "eth", 1))
    assert [t.txid for t in world.chains["eth"].mempool] == [lock.txid]
    world.mine(FINALITY)
    assert await wait_status(b, swap_id, Status.LEG1_FINAL, Status.LEG2_LOCKING, Status.LEG2_LOCKED)
    assert [t.txid for t in await a.store.signed_txs(swap_id=swap_id) if t.purpose == "lock"] == [lock.txid]


async def test_a_swap_whose_log_does_not_replay_is_named_and_the_others_resume(
    make_desk: MakeDesk, tmp_path: Path
) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    good = await b.capture.accept_offer(await a.capture.create_offer(request(b)))
    bad = await b.capture.accept_offer(await a.capture.create_offer(request(b)))
    await stop(b)
    with sqlite3.connect(tmp_path / "desk-b.sqlite3") as db:
        db.execute(
            "UPDATE events SET payload = ? WHERE swap_id = ? AND kind = 'acceptance_registered'",
            ('{"event": {"kind": "no-such-event"}}', bad["swap_id"]),
        )

    b = await make_desk("desk-b", like=b)

    assert b.engine.live_ids() == [good["swap_id"]]
    assert list(b.engine.unresumable) == [bad["swap_id"]]


async def _mempool_has(world: World, chain: str, count: int) -> bool:
    return len(world.chains[chain].mempool) >= count
