"""Trade capture refuses documents that could hurt us, before anything is stored."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from settlerd.engine import CaptureError, DocumentError, LegRequest, OfferRequest

from .conftest import MakeDesk


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
