"""Trade capture over HTTP against real daemons: every response fits the served OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from localnet import ADMIN_TOKEN, Daemon, Localnet, btc, eth

from tests.integration.api.openapi_check import OpenApiChecker


class Client:
    def __init__(self, http: aiohttp.ClientSession, checker: OpenApiChecker) -> None:
        self.http = http
        self.checker = checker

    async def call(self, daemon: Daemon, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with self.http.request(method, daemon.url + path, json=body, headers=headers) as response:
            answer = await response.json(content_type=None)
            self.checker.check(method, path, response.status, response.content_type, answer)
            return response.status, answer


@pytest.fixture
async def client(desks: tuple[Daemon, Daemon]) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as http:
        async with http.get(desks[0].url + "/v1/openapi.json") as response:
            document = await response.json()
        yield Client(http, OpenApiChecker(document))


async def test_capture_answers_as_documented(
    client: Client, net: Localnet, desks: tuple[Daemon, Daemon]
) -> None:
    a, b = desks
    order = {"counterparty": b.node_id, "give": btc(1_000_000), "get": eth(10**16)}

    status, wallets = await client.call(a, "GET", "/v1/wallets")
    assert status == 200 and set(wallets["wallets"]) == {"bitcoin", "evm"}

    status, offer = await client.call(a, "POST", "/v1/swaps", order)
    assert status == 201 and offer["type"] == "settlerd.offer"
    status, acceptance = await client.call(b, "POST", "/v1/offers/accept", offer)
    assert status == 201 and acceptance["offer_digest"]
    status, again = await client.call(b, "POST", "/v1/offers/accept", offer)
    assert (status, again["field"]) == (409, "swap_id")
    tampered = {**offer, "terms": {**offer["terms"], "leg1": {**offer["terms"]["leg1"], "amount": "1"}}}
    status, refused = await client.call(b, "POST", "/v1/offers/accept", tampered)
    assert (status, refused["field"]) == (422, "signature")

    status, swap = await client.call(a, "POST", f"/v1/swaps/{offer['swap_id']}/acceptance", acceptance)
    assert status == 200 and swap["status"] in ("accepted", "leg1_locking", "leg1_locked")
    await net.wait_status(a, offer["swap_id"], "leg1_locking", "leg1_locked", "leg1_final")
    status, late = await client.call(
        a, "POST", f"/v1/swaps/{offer['swap_id']}/cancel", {"reason": "too late"}
    )
    assert status == 409 and "cannot be cancelled" in late["error"]

    status, fresh = await client.call(a, "POST", "/v1/swaps", order)
    status, cancelled = await client.call(
        a, "POST", f"/v1/swaps/{fresh['swap_id']}/cancel", {"reason": "desk changed its mind"}
    )
    assert (status, cancelled["status"]) == (200, "cancelled")

    bad = {**order, "give": {"chain": "bitcoin", "asset": "BTC", "amount": "-5"}}
    status, error = await client.call(a, "POST", "/v1/swaps", bad)
    assert (status, error["field"]) == (400, "give.amount")
    status, error = await client.call(
        a, "POST", "/v1/swaps", {**order, "give": {**order["give"], "chain": "doge"}}
    )
    assert (status, error["field"]) == (422, "give.chain")
    status, error = await client.call(a, "POST", "/v1/swaps/" + "0" * 32 + "/acceptance", acceptance)
    assert status == 404

    await net.wait_status(a, offer["swap_id"], "completed")
