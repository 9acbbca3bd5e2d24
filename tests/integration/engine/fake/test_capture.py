"""Trade capture and the pre-lock risk checks, on fake chains: what the engine refuses, whatever the chain."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from settlerd.engine import CaptureError, DocumentError, LegRequest, Limits
from settlerd.swap import Status

from .conftest import FUNDS, MakeDesk, request, wait_status


def unsigned(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "signature"}


async def test_an_offer_reusing_a_known_hashlock_is_refused(make_desk: MakeDesk) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    offer = await a.capture.create_offer(request(b))
    await b.capture.accept_offer(offer)
    # The same hashlock under a new swap id, properly signed: one lock on chain would serve both swaps.
    again = a.node_key.sign({**unsigned(offer), "swap_id": uuid.uuid4().hex})

    with pytest.raises(CaptureError) as refused:
        await b.capture.accept_offer(again)
    assert refused.value.field == "terms.leg1.hashlock"
    assert await b.store.get_swap(again["swap_id"]) is None


async def test_an_acceptance_with_a_malformed_party_is_refused(make_desk: MakeDesk) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    offer = await a.capture.create_offer(request(b))
    acceptance = await b.capture.accept_offer(offer)
    upper = b.node_key.sign({**unsigned(acceptance), "leg1_recipient": acceptance["leg1_recipient"].upper()})

    with pytest.raises(DocumentError) as refused:
        await a.capture.register_acceptance(offer["swap_id"], upper)
    assert refused.value.field == "leg1_recipient"
    assert "lower-case" in refused.value.message
    assert (await a.store.get_swap(offer["swap_id"])).status == "offered"  # type: ignore[union-attr]


@pytest.mark.parametrize(("leg", "field", "value"), [("leg2", "timelock", 2**41), ("leg1", "amount", 0)])
async def test_an_offer_the_chain_cannot_hold_is_refused(
    make_desk: MakeDesk, leg: str, field: str, value: int
) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    offer = await a.capture.create_offer(request(b))
    terms = offer["terms"]
    bad = a.node_key.sign({**unsigned(offer), "terms": {**terms, leg: {**terms[leg], field: value}}})

    with pytest.raises((DocumentError, CaptureError)):
        await b.capture.accept_offer(bad)
    assert await b.store.get_swap(offer["swap_id"]) is None


async def test_limits_and_balance_refuse_a_lock_with_the_reason(make_desk: MakeDesk) -> None:
    a = await make_desk("desk-a", limits=Limits(per_asset={"eth:ETH": 10**15}))
    b = await make_desk("desk-b")
    c = await make_desk("desk-c", limits=Limits(per_counterparty={"desk-b": {"eth:ETH": 10**15}}))
    d = await make_desk("desk-d")
    cases = (
        (a, LegRequest("eth", "ETH", 2 * 10**15), "above the limit 1000000000000000"),
        (c, LegRequest("eth", "ETH", 2 * 10**15), "with desk-b would be 2000000000000000"),
        (d, LegRequest("eth", "ETH", 10 * FUNDS), "balance"),
    )
    for desk, give, reason in cases:
        offer = await desk.capture.create_offer(request(b, give=give))
        await desk.capture.register_acceptance(offer["swap_id"], await b.capture.accept_offer(offer))
        # The lock is the chain worker's job: the refusal follows the acceptance, it does not end it.
        assert await wait_status(desk, offer["swap_id"], Status.CANCELLED) == Status.CANCELLED
        events = await desk.store.events(swap_id=offer["swap_id"], limit=None)
        refused = [e for e in events if e.kind == "lock_refused"]
        assert len(refused) == 1 and reason in refused[0].payload["event"]["reason"], refused
        assert await desk.store.signed_txs(swap_id=offer["swap_id"]) == [], "nothing may be signed"
