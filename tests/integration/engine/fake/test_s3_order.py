"""S3 seen from the node: a chain's spends reach it claims first, nearest deadline first, then locks.

Desk P's "eth" node stops answering while one of its locks is being signed; meanwhile another lock and
two claims queue up, the claim with the later deadline first. Once the node answers, the order in which
the transactions arrive in the fake chain's mempool is the order the worker chose.
"""

from __future__ import annotations

from datetime import timedelta

from settlerd.swap import Status

from .conftest import FINALITY, Desk, MakeDesk, World, request, trade, wait_for, wait_status


async def test_claims_nearest_their_deadline_reach_the_node_first(make_desk: MakeDesk, world: World) -> None:
    i, p = await make_desk("desk-i"), await make_desk("desk-p")
    eth, usd = world.chains["eth"], world.chains["usd"]

    # X is agreed first, so its leg 1 (P's to claim) expires first; Y is settled further first.
    x_offer = await i.capture.create_offer(request(p))
    x_acceptance = await p.capture.accept_offer(x_offer)
    x = str(x_offer["swap_id"])
    world.advance(timedelta(minutes=5))
    y = await trade(i, p)
    await wait_for(lambda: _count(world, "eth", 1))
    world.mine(FINALITY)  # Y's leg 1 final: P locks leg 2 on usd
    await wait_for(lambda: _count(world, "usd", 1))
    usd.mine()  # Y's leg 2 at one confirmation
    await wait_status(i, y, Status.LEG2_LOCKED)
    await i.capture.register_acceptance(x, x_acceptance)
    await wait_for(lambda: _count(world, "eth", 1))
    eth.mine(FINALITY)  # X's leg 1 final: P locks leg 2 on usd
    await wait_for(lambda: _count(world, "usd", 1))

    p.adapters["eth"].hang()
    z, w = await trade(p, i), await trade(p, i)  # P's own locks on eth: Z's is stuck in the node call
    usd.mine()  # Y's leg 2 final: I claims it, revealing Y's secret to P
    await wait_status(p, y, Status.LEG2_CLAIMED)
    usd.mine()  # X's leg 2 final: I claims it, revealing X's secret
    await wait_status(p, x, Status.LEG2_CLAIMED)
    assert eth.mempool == [], "P's eth node was meant to hang"

    p.adapters["eth"].unhang()
    await wait_for(lambda: _count(world, "eth", 4))
    order = [
        await _txid(p, swap_id, purpose)
        for swap_id, purpose in ((z, "lock"), (x, "claim"), (y, "claim"), (w, "lock"))
    ]
    assert [tx.txid for tx in eth.mempool] == order, "Z's lock was under way; then X's claim, Y's, W's lock"


async def _count(world: World, chain: str, n: int) -> bool:
    return len(world.chains[chain].mempool) >= n


async def _txid(desk: Desk, swap_id: str, purpose: str) -> str:
    [tx] = [t for t in await desk.store.signed_txs(swap_id=swap_id) if t.purpose == purpose]
    return tx.txid
