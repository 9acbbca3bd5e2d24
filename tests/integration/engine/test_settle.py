"""Two engines settle on anvil what needs the real contracts and nonces: ETH for an ERC-20 (approve and
lock), both legs on one chain, a restart mid-swap. The engine's own paths (refunds, restarts, reorgs,
replay) run on fake chains in ``fake/``."""

from __future__ import annotations

import asyncio
from typing import Any

from web3 import AsyncWeb3

from settlerd.engine import LegRequest, OfferRequest
from settlerd.store import TxStatus
from settlerd.store.rows import UNCONFIRMED
from settlerd.swap import Status
from tests.fixtures.timeouts import TIMEOUT_FACTOR

from .conftest import Desk, MakeDesk, stop

ETH_AMOUNT = 10**17
TOKEN_AMOUNT = 5_000
SETTLE_TIMEOUT_S = 60.0 * TIMEOUT_FACTOR


async def status_of(desk: Desk, swap_id: str) -> str:
    row = await desk.store.get_swap(swap_id)
    assert row is not None
    return row.status


async def wait_status(desk: Desk, swap_id: str, *wanted: Status) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT_S
    while True:
        status = await status_of(desk, swap_id)
        if status in wanted:
            return status
        if loop.time() > deadline:
            timeline = [(e.kind, e.status) for e in await desk.store.events(swap_id=swap_id, limit=None)]
            raise AssertionError(f"{desk.name}: swap {swap_id} is {status}, wanted {wanted}; {timeline}")
        await asyncio.sleep(0.2)


async def token_balance(token: Any, address: str) -> int:
    return int(await token.functions.balanceOf(address).call())


async def trade(a: Desk, b: Desk, token: Any) -> str:
    offer = await a.capture.create_offer(
        OfferRequest(
            counterparty=b.name,
            give=LegRequest("eth", "ETH", ETH_AMOUNT),
            get=LegRequest("usd", token.address, TOKEN_AMOUNT),
        )
    )
    acceptance = await b.capture.accept_offer(offer)
    await a.capture.register_acceptance(offer["swap_id"], acceptance)
    return str(offer["swap_id"])


async def test_eth_for_erc20_settles_on_both_sides(
    make_desk: MakeDesk, miner: None, token: Any, w3: AsyncWeb3
) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    b_eth_before = await w3.eth.get_balance(b.address("eth"))
    a_token_before = await token_balance(token, a.address("usd"))

    swap_id = await trade(a, b, token)

    assert await wait_status(a, swap_id, Status.COMPLETED) == Status.COMPLETED
    assert await wait_status(b, swap_id, Status.COMPLETED) == Status.COMPLETED
    assert await token_balance(token, a.address("usd")) == a_token_before + TOKEN_AMOUNT
    # B paid gas for its lock and claim out of the "eth" account only for the claim; it gained the leg.
    assert await w3.eth.get_balance(b.address("eth")) > b_eth_before + ETH_AMOUNT * 9 // 10

    for desk in (a, b):
        events = await desk.store.events(swap_id=swap_id, limit=None)
        assert events[-1].status == Status.COMPLETED
        assert "tick" not in {e.kind for e in events if e.payload.get("change") is None}
        legs = {leg.leg: leg for leg in await desk.store.legs_of(swap_id)}
        assert all(leg.lock_txid and leg.claim_txid for leg in legs.values()), (desk.name, legs)
        # Settled journal entries are confirmed or dropped, so nothing is rebroadcast forever.
        journal = await desk.store.signed_txs(swap_id=swap_id)
        assert {t.purpose: t.status for t in journal if t.status == TxStatus.CONFIRMED}.keys() >= {"lock"}
        assert not [t for t in journal if t.status in UNCONFIRMED], journal
    # What ends each side: the initiator waits for both claims to be final, the participant for its own.
    assert all(leg.final for leg in await a.store.legs_of(swap_id))
    assert {leg.leg: leg.final for leg in await b.store.legs_of(swap_id)}[1]


async def test_initiator_restarted_mid_swap_resumes_and_completes(
    make_desk: MakeDesk, miner: None, token: Any
) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    swap_id = await trade(a, b, token)
    await wait_status(a, swap_id, Status.LEG1_LOCKING, Status.LEG1_LOCKED, Status.LEG1_FINAL)
    await stop(a)
    a = await make_desk("desk-a", like=a)

    assert await wait_status(a, swap_id, Status.COMPLETED) == Status.COMPLETED
    assert await wait_status(b, swap_id, Status.COMPLETED) == Status.COMPLETED
    locks = [t for t in await a.store.signed_txs(swap_id=swap_id) if t.purpose == "lock"]
    assert len(locks) == 1, "a restart must never fund the same leg twice"


async def test_both_legs_on_one_chain_settle(make_desk: MakeDesk, miner: None, token: Any) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    give, get = LegRequest("eth", "ETH", ETH_AMOUNT), LegRequest("eth", token.address, TOKEN_AMOUNT)
    offer = await a.capture.create_offer(OfferRequest(b.name, give, get))
    await a.capture.register_acceptance(offer["swap_id"], await b.capture.accept_offer(offer))

    assert await wait_status(a, offer["swap_id"], Status.COMPLETED) == Status.COMPLETED
    assert await wait_status(b, offer["swap_id"], Status.COMPLETED) == Status.COMPLETED
    events = await a.store.events(swap_id=offer["swap_id"], limit=None)
    assert not [e for e in events if e.payload.get("alerts")], "each lock must reach only its own leg"
