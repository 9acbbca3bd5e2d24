"""Trade capture refuses documents that could hurt us, before anything is stored."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from settlerd.engine import CaptureError, DocumentError, LegRequest, Limits, OfferRequest
from settlerd.swap import Status

from .conftest import MakeDesk
from .test_settle import wait_status


def unsigned(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "signature"}


async def test_an_offer_reusing_a_known_hashlock_is_refused(make_desk: MakeDesk, token: Any) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    give, get = LegRequest("eth", "ETH", 10**15), LegRequest("usd", token.address, 10)
    offer = await a.capture.create_offer(OfferRequest(b.name, give, get))
    await b.capture.accept_offer(offer)
    # The same hashlock under a new swap id, properly signed: one lock on chain would serve both swaps.
    again = a.node_key.sign({**unsigned(offer), "swap_id": uuid.uuid4().hex})

    with pytest.raises(CaptureError) as refused:
        await b.capture.accept_offer(again)
    assert refused.value.field == "terms.leg1.hashlock"
    assert await b.store.get_swap(again["swap_id"]) is None


async def test_an_acceptance_with_a_malformed_address_is_refused(make_desk: MakeDesk, token: Any) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    give, get = LegRequest("eth", "ETH", 10**15), LegRequest("usd", token.address, 10)
    offer = await a.capture.create_offer(OfferRequest(b.name, give, get))
    acceptance = await b.capture.accept_offer(offer)
    lowercase = b.node_key.sign(
        {**unsigned(acceptance), "leg1_recipient": acceptance["leg1_recipient"].lower()}
    )

    with pytest.raises(DocumentError) as refused:
        await a.capture.register_acceptance(offer["swap_id"], lowercase)
    assert refused.value.field == "leg1_recipient"
    assert "checksummed" in refused.value.message
    assert (await a.store.get_swap(offer["swap_id"])).status == "offered"  # type: ignore[union-attr]


async def test_an_offer_with_an_implausible_timelock_is_refused(make_desk: MakeDesk, token: Any) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    give, get = LegRequest("eth", "ETH", 10**15), LegRequest("usd", token.address, 10)
    offer = await a.capture.create_offer(OfferRequest(b.name, give, get))
    terms = offer["terms"]
    bad = a.node_key.sign(
        {**unsigned(offer), "terms": {**terms, "leg2": {**terms["leg2"], "timelock": 2**41}}}
    )

    with pytest.raises((DocumentError, CaptureError)):
        await b.capture.accept_offer(bad)
    assert await b.store.get_swap(offer["swap_id"]) is None


async def test_limits_and_balance_refuse_a_lock_with_the_reason(make_desk: MakeDesk, token: Any) -> None:
    per_asset = Limits(per_asset={"eth:ETH": 10**15})
    a, b = await make_desk("desk-a", limits=per_asset), await make_desk("desk-b")
    c = await make_desk("desk-c", limits=Limits(per_counterparty={"desk-b": {"eth:ETH": 10**15}}))
    d = await make_desk("desk-d")
    cases = (
        (a, LegRequest("eth", "ETH", 2 * 10**15), "above the limit 1000000000000000"),
        (c, LegRequest("eth", "ETH", 2 * 10**15), "with desk-b would be 2000000000000000"),
        (d, LegRequest("eth", "ETH", 10**24), "balance"),
    )
    for desk, give, reason in cases:
        offer = await desk.capture.create_offer(
            OfferRequest(b.name, give, LegRequest("usd", token.address, 10))
        )
        await desk.capture.register_acceptance(offer["swap_id"], await b.capture.accept_offer(offer))
        # The lock is the chain worker's job: the refusal follows the acceptance, it does not end it.
        assert await wait_status(desk, offer["swap_id"], Status.CANCELLED) == Status.CANCELLED
        events = await desk.store.events(swap_id=offer["swap_id"], limit=None)
        refused = [e for e in events if e.kind == "lock_refused"]
        assert len(refused) == 1 and reason in refused[0].payload["event"]["reason"], refused
        assert await desk.store.signed_txs(swap_id=offer["swap_id"]) == [], "nothing may be signed"


@pytest.mark.parametrize(("leg", "amount"), [("leg1", 2**256), ("leg2", 2**96), ("leg2", 0)])
async def test_an_offer_with_an_amount_the_contract_cannot_hold_is_refused(
    make_desk: MakeDesk, token: Any, leg: str, amount: int
) -> None:
    """The participant's side of an initiator that skipped its own checks: 2**256 wei can never be locked,
    and accepting it would let the initiator lock real funds against a leg that cannot exist."""
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    give, get = LegRequest("eth", "ETH", 10**15), LegRequest("usd", token.address, 10)
    offer = await a.capture.create_offer(OfferRequest(b.name, give, get))
    terms = offer["terms"]
    bad = a.node_key.sign({**unsigned(offer), "terms": {**terms, leg: {**terms[leg], "amount": str(amount)}}})

    with pytest.raises(DocumentError) as refused:
        await b.capture.accept_offer(bad)
    assert refused.value.field == f"terms.{leg}.amount"
    assert await b.store.get_swap(offer["swap_id"]) is None
