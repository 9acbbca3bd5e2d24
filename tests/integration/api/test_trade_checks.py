"""An offer is checked where it enters: each leg's amount and asset against its chain, over HTTP.

The initiator runs its own legs through the adapters' ``check_terms`` at create, as the participant does
at accept: a leg 2 that could never be funded (2**256 wei) must not lead to a real leg 1 lock.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from settlerd_bitcoin import factory as bitcoin_adapter
from settlerd_evm.adapter import EvmAdapter, EvmSettings

from settlerd.api import Metrics, Readiness, make_app
from settlerd.config import PolicySettings
from settlerd.engine import Capture, CaptureSettings, Engine, NodeKey
from settlerd.store import Store
from tests.fixtures.anvil import Anvil
from tests.integration.evm import conftest as evm_fixtures

from .conftest import TOKENS, Api, make_settings
from .openapi_check import OpenApiChecker

htlc_address = evm_fixtures.htlc_address  # the deployed contract, by fixture name

pytestmark = [pytest.mark.bitcoind, pytest.mark.anvil]

MAX_MONEY_SAT = 21_000_000 * 100_000_000
DUST_SAT = 330
MAX_WEI = 2**96 - 1
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"  # a well-formed address; no code needed at create


@pytest.fixture
async def trade_api(tmp_path: Path, bitcoin_node: Any, anvil: Anvil, htlc_address: str) -> AsyncIterator[Api]:
    store = await Store.open(str(tmp_path / "trade.sqlite3"))
    btc = bitcoin_adapter(
        {
            "name": "bitcoin",
            "rpc_url": bitcoin_node.rpc_url,
            "rpc_user": bitcoin_node.rpc_user,
            "rpc_password": bitcoin_node.rpc_password,
            "network": "regtest",
            "seed": os.urandom(32).hex(),
            "birthday_height": await bitcoin_node.rpc("getblockcount"),
            "poll_interval": 0.2,
        },
        store,
    )
    evm = EvmAdapter(
        EvmSettings(rpc_url=anvil.rpc_url, contract=htlc_address, private_key=anvil.keys[1], name="ethereum"),
        store,
    )
    adapters = {"bitcoin": btc, "ethereum": evm}
    for adapter in adapters.values():
        await adapter.start()
    policy = PolicySettings()
    capture = Capture(
        Engine(store, adapters),
        NodeKey(os.urandom(32)),
        CaptureSettings(
            node_id="desk-a",
            leg1_duration=policy.leg1_duration,
            leg2_duration=policy.leg2_duration,
            policy=policy.to_policy(),
            finality_depth={"bitcoin": 3, "ethereum": 3},
            counterparty_keys={},
            allow_unknown_counterparties=True,
        ),
    )
    app = make_app(
        make_settings(tmp_path / "trade.sqlite3"),
        store,
        readiness=Readiness(),
        metrics=Metrics(),
        capture=capture,
    )
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/v1/openapi.json") as r:
                checker = OpenApiChecker(await r.json())
            yield Api(base, session, checker)
    finally:
        await runner.cleanup()
        for adapter in adapters.values():
            await adapter.close()
        await store.close()


def leg(chain: str, asset: str, amount: int) -> dict[str, str]:
    return {"chain": chain, "asset": asset, "amount": str(amount)}


def btc(amount: int, asset: str = "BTC") -> dict[str, str]:
    return leg("bitcoin", asset, amount)


def eth(amount: int, asset: str = "ETH") -> dict[str, str]:
    return leg("ethereum", asset, amount)


async def create(api: Api, give: dict[str, str], get: dict[str, str]) -> tuple[int, Any]:
    body = json.dumps({"counterparty": "desk-b", "give": give, "get": get}).encode()
    reply = await api.request(
        "POST",
        "/v1/swaps",
        token=TOKENS["trade"],
        headers={"Content-Type": "application/json"},
        data=body,
    )
    return reply.status, reply.body


REFUSED = [
    # Bitcoin: the HTLC output's dust limit and MAX_MONEY, on either side of the trade.
    (btc(DUST_SAT - 1), eth(10**15), "give.amount"),
    (btc(1), eth(10**15), "give.amount"),
    (btc(MAX_MONEY_SAT + 1), eth(10**15), "give.amount"),
    (eth(10**15), btc(DUST_SAT - 1), "get.amount"),
    (eth(10**15), btc(2**256), "get.amount"),
    # EVM: the contract's range 1 .. 2**96 - 1.
    (btc(10**6), eth(MAX_WEI + 1), "get.amount"),
    (btc(10**6), eth(2**256), "get.amount"),
    (eth(2**96), btc(10**6), "give.amount"),
    # Assets a chain does not carry, or that are not assets at all.
    (btc(10**6, "ETH"), eth(10**15), "give.asset"),
    (btc(10**6), eth(10**15, "0xdeadbeef"), "get.asset"),
    (btc(10**6), eth(10**15, "BTC"), "get.asset"),
    (btc(10**6), eth(10**15, "0x" + "00" * 20), "get.asset"),
]


@pytest.mark.parametrize(
    ("give", "get", "field"), REFUSED, ids=[f"{r[2]}-{i}" for i, r in enumerate(REFUSED)]
)
async def test_a_leg_its_chain_cannot_carry_is_refused_naming_the_field(
    trade_api: Api, give: dict[str, str], get: dict[str, str], field: str
) -> None:
    status, body = await create(trade_api, give, get)
    assert (status, body["field"]) == (422, field), body
    assert (await trade_api.get("/v1/swaps")).body["swaps"] == [], "nothing may be stored"


async def test_the_boundaries_themselves_are_accepted_in_one_spelling(trade_api: Api) -> None:
    accepted = [
        (btc(DUST_SAT), eth(1), ("BTC", "ETH")),
        (btc(MAX_MONEY_SAT, "btc"), eth(MAX_WEI, "eth"), ("BTC", "ETH")),
        (eth(MAX_WEI, "Eth"), btc(DUST_SAT, "Btc"), ("ETH", "BTC")),
        (btc(10**6), eth(10**15, TOKEN.lower()), ("BTC", TOKEN)),
    ]
    for give, get, assets in accepted:
        status, offer = await create(trade_api, give, get)
        assert status == 201, offer
        terms = offer["terms"]
        assert (terms["leg1"]["asset"], terms["leg2"]["asset"]) == assets
        assert (terms["leg1"]["amount"], terms["leg2"]["amount"]) == (give["amount"], get["amount"])


async def test_zero_and_non_numbers_are_malformed(trade_api: Api) -> None:
    for amount in ("0", "-1", "1e3", ""):
        status, body = await create(trade_api, {**btc(10**6), "amount": amount}, eth(10**15))
        assert (status, body["field"]) == (400, "give.amount"), body
