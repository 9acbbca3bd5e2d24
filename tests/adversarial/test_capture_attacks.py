"""Attacks on trade capture: a hashlock reused under concurrency, assets spelled to dodge risk limits,
and an offer accepted by someone it was not made to."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from settlerd.engine import CaptureError, LegRequest, Limits, OfferRequest
from settlerd.swap import Status
from tests.fixtures.postgres import fresh_database
from tests.integration.engine import conftest as engine_fixtures
from tests.integration.engine.conftest import Desk, MakeDesk
from tests.integration.engine.test_settle import wait_status

# The engine tests' desks (two engines on one anvil), taken into this module by name.
clock, fresh_keys, make_desk = engine_fixtures.clock, engine_fixtures.fresh_keys, engine_fixtures.make_desk
htlc_address, token, w3 = engine_fixtures.htlc_address, engine_fixtures.token, engine_fixtures.w3

ETHER = 10**18


def unsigned(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "signature"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def pg_url(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """None for SQLite; a PostgreSQL database of the test's own, dropped after."""
    if request.param == "sqlite":
        yield None
        return
    async with fresh_database("settlerd_capture") as url:
        yield url


async def participants(make_desk: MakeDesk, pg_url: str | None) -> tuple[Desk, Desk]:
    """Desk B as two captures: on SQLite one daemon (one store), on PostgreSQL two replicas (two stores
    on one database), which only the database itself can keep apart."""
    if pg_url is None:
        b = await make_desk("desk-b")
        return b, b
    b = await make_desk("desk-b", url=pg_url)
    return b, await make_desk("desk-b", like=b, url=pg_url)


async def test_concurrent_acceptances_sharing_a_hashlock_make_one_swap(
    make_desk: MakeDesk, token: Any, pg_url: str | None
) -> None:
    a = await make_desk("desk-a")
    b1, b2 = await participants(make_desk, pg_url)
    give, get = LegRequest("eth", "ETH", 10**15), LegRequest("usd", token.address, 10)
    offer = await a.capture.create_offer(OfferRequest("desk-b", give, get))
    # The same hashlock under new swap ids, properly signed: one lock on chain would back every one.
    copies = [a.node_key.sign({**unsigned(offer), "swap_id": uuid.uuid4().hex}) for _ in range(3)]

    results = await asyncio.gather(
        *(
            desk.capture.accept_offer(doc)
            for desk, doc in zip((b1, b2, b1, b2), [offer, *copies], strict=True)
        ),
        return_exceptions=True,
    )

    accepted = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, CaptureError)]
    assert len(accepted) == 1 and len(refused) == 3, results
    assert all(r.status == 409 and r.field == "terms.leg1.hashlock" for r in refused), refused
    assert await b1.store.swaps_with_hashlock(bytes.fromhex(offer["terms"]["leg1"]["hashlock"])) == [
        accepted[0]["swap_id"]
    ]


LOCKED = (Status.LEG1_LOCKING, Status.LEG1_LOCKED, Status.LEG1_FINAL)


async def test_an_asset_spelled_differently_counts_against_the_same_limit(
    make_desk: MakeDesk, token: Any
) -> None:
    a = await make_desk("desk-a", limits=Limits(per_asset={"eth:ETH": ETHER}))
    b = await make_desk("desk-b")
    swap_ids = []
    for spelling in ("ETH", "eth", "Eth", "eTh"):
        offer = await a.capture.create_offer(
            OfferRequest("desk-b", LegRequest("eth", spelling, ETHER), LegRequest("usd", token.address, 10))
        )
        assert offer["terms"]["leg1"]["asset"] == "ETH"
        await a.capture.register_acceptance(offer["swap_id"], await b.capture.accept_offer(offer))
        swap_ids.append(offer["swap_id"])

    for swap_id in swap_ids:  # each lock is its chain worker's job, checked one after the other
        await wait_status(a, swap_id, Status.CANCELLED, *LOCKED)
    locked = [s for s in swap_ids if await a.store.signed_txs(swap_id=s)]
    assert len(locked) == 1, f"{len(locked)} locks of 1 ETH under a 1 ETH cap"
    for swap_id in swap_ids:
        if swap_id in locked:
            continue
        row = await a.store.get_swap(swap_id)
        assert row is not None and row.status == "cancelled"
        events = await a.store.events(swap_id=swap_id, limit=None)
        assert any("above the limit" in str(e.payload) for e in events if e.kind == "lock_refused")


async def test_a_lowercase_or_unknown_asset_in_an_offer_is_refused(make_desk: MakeDesk, token: Any) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    offer = await a.capture.create_offer(
        OfferRequest("desk-b", LegRequest("eth", "ETH", 10**15), LegRequest("usd", token.address, 10))
    )
    terms = offer["terms"]
    for asset in ("eth", token.address.lower()):
        respelled = a.node_key.sign(
            {**unsigned(offer), "terms": {**terms, "leg1": {**terms["leg1"], "asset": asset}}}
        )
        with pytest.raises(ValueError, match="must be written") as refused:
            await b.capture.accept_offer(respelled)
        assert getattr(refused.value, "field", None) == "terms.leg1.asset"


async def test_unknown_counterparties_are_refused_by_default(make_desk: MakeDesk, token: Any) -> None:
    a = await make_desk("desk-a", counterparties={})
    b = await make_desk("desk-b")
    give, get = LegRequest("eth", "ETH", 10**15), LegRequest("usd", token.address, 10)

    with pytest.raises(CaptureError) as refused:
        await a.capture.create_offer(OfferRequest("desk-b", give, get))
    assert (refused.value.status, refused.value.field) == (403, "counterparty")
    assert "engine.allow_unknown_counterparties" in str(refused.value)

    # Nor does a desk with no counterparties configured accept an offer from a stranger.
    c = await make_desk("desk-c", counterparties={})
    offer = await b.capture.create_offer(OfferRequest("desk-c", give, get))
    with pytest.raises(CaptureError) as refused:
        await c.capture.accept_offer(offer)
    assert (refused.value.status, refused.value.field) == (403, "initiator.node_id")
    assert await c.store.get_swap(offer["swap_id"]) is None


async def test_an_offer_is_bound_to_its_participants_key(make_desk: MakeDesk, token: Any) -> None:
    b = await make_desk("desk-b")
    a = await make_desk("desk-a", counterparties={"desk-b": b.node_key.public_hex})
    give, get = LegRequest("eth", "ETH", 10**15), LegRequest("usd", token.address, 10)
    offer = await a.capture.create_offer(OfferRequest("desk-b", give, get))
    assert offer["participant"] == {"node_id": "desk-b", "node_key": b.node_key.public_hex}

    # Whoever obtains the offer runs a daemon named desk-b with a key of its own: its daemon refuses...
    thief = await make_desk("desk-b")
    with pytest.raises(CaptureError) as refused:
        await thief.capture.accept_offer(offer)
    assert (refused.value.status, refused.value.field) == (403, "participant.node_key")
    # ...and an acceptance made by hand under desk-b's name with its own key is refused by desk A.
    real = await b.capture.accept_offer(offer)
    forged = thief.node_key.sign(
        {**unsigned(real), "participant": {"node_id": "desk-b", "node_key": thief.node_key.public_hex}}
    )
    with pytest.raises(CaptureError) as refused:
        await a.capture.register_acceptance(offer["swap_id"], forged)
    assert (refused.value.status, refused.value.field) == (403, "participant.node_key")
    assert (await a.store.get_swap(offer["swap_id"])).status == "offered"  # type: ignore[union-attr]

    await a.capture.register_acceptance(offer["swap_id"], real)
    assert (await a.store.get_swap(offer["swap_id"])).status != "offered"  # type: ignore[union-attr]
