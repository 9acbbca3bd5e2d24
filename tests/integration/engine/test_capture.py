"""Trade capture refuses documents that could hurt us, before anything is stored: the EVM adapter's own
refusals (address checksums, the contract's amount range). The chain-independent ones are in ``fake/``."""

from __future__ import annotations

from typing import Any

import pytest

from settlerd.engine import DocumentError, LegRequest, OfferRequest

from .conftest import MakeDesk


def unsigned(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "signature"}


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
