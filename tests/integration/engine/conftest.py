"""Two engines (desk A, desk B) in one process, each with its own store, keys and adapters, on one anvil.

Leg "eth" is native ETH and leg "usd" an ERC-20, as two chain names on the same node, so every engine
path (capture, locks, finality, claims, refunds, restarts) runs against real contracts and real stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from eth_account import Account
from settlerd_evm.adapter import EvmAdapter, EvmSettings
from web3 import AsyncWeb3

from settlerd.chains.supervisor import ChainLoop
from settlerd.engine import Capture, CaptureSettings, Engine, Limits, NodeKey
from settlerd.store import Store
from settlerd.swap import Policy
from tests.fixtures.anvil import Anvil
from tests.fixtures.node_gate import NodeGate
from tests.integration.evm.conftest import htlc_address, send, token, w3

__all__ = ["htlc_address", "token", "w3"]

FINALITY = 2
# A policy scaled to a local chain: swaps of an hour, decisions within minutes.
POLICY = Policy(
    leg1_claim_margin=timedelta(minutes=15),
    min_leg2_duration=timedelta(minutes=10),
    min_leg2_window=timedelta(minutes=5),
    min_time_to_reveal=timedelta(minutes=2),
    claim_urgent_window=timedelta(minutes=5),
)
FUNDING_WEI = 10**20
TOKEN_UNITS = 10**12


@dataclass
class Desk:
    name: str
    store: Store
    engine: Engine
    capture: Capture
    adapters: dict[str, EvmAdapter]
    keys: dict[str, str]
    task: asyncio.Task[None] | None = None
    node_key: NodeKey = field(default_factory=lambda: NodeKey(secrets.token_bytes(32)))

    def address(self, chain: str) -> str:
        return str(Account.from_key(self.keys[chain]).address)


MakeDesk = Callable[..., Awaitable[Desk]]


class Clock:
    """Wall-clock time plus a shift that moves the engines' clocks and anvil's block time together."""

    def __init__(self, anvil: Anvil) -> None:
        self._anvil = anvil
        # Earlier tests may have moved anvil's time ahead: start from the chain's own time.
        block = anvil.rpc("eth_getBlockByNumber", "latest", False)
        assert isinstance(block, dict)
        chain_now = datetime.fromtimestamp(int(block["timestamp"], 16), UTC)
        self.shift = max(timedelta(0), chain_now - datetime.now(UTC))

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.shift

    def advance(self, by: timedelta) -> None:
        self.shift += by
        self._anvil.rpc("evm_increaseTime", int(by.total_seconds()))
        self._anvil.rpc("evm_mine")


@pytest.fixture
def clock(anvil: Anvil) -> Clock:
    return Clock(anvil)


@pytest.fixture
async def fresh_keys(anvil: Anvil, w3: AsyncWeb3, token: Any) -> Callable[[], Awaitable[str]]:
    """A new funded account: ETH for gas and value, and test tokens."""

    async def make() -> str:
        key = "0x" + secrets.token_hex(32)
        address = Account.from_key(key).address
        # Set, not sent: the dev account's 10,000 ETH would run dry over a session of many desks.
        anvil.rpc("anvil_setBalance", address, hex(FUNDING_WEI))
        data = token.encode_abi("mint", [address, TOKEN_UNITS])
        await send(w3, anvil.keys[0], {"to": token.address, "data": data})
        return key

    return make


@pytest.fixture
async def make_desk(
    anvil: Anvil, htlc_address: str, tmp_path: Path, fresh_keys: Callable[[], Awaitable[str]], clock: Clock
) -> AsyncIterator[MakeDesk]:
    desks: list[Desk] = []

    async def make(
        name: str,
        *,
        like: Desk | None = None,
        limits: Limits | None = None,
        url: str | None = None,
        counterparties: dict[str, str] | None = None,
        rpc_urls: Mapping[str, str] | None = None,
    ) -> Desk:
        """A new desk, or with ``like`` the same desk restarted on its database and keys (or, with a
        PostgreSQL ``url``, a replica of it). Without ``counterparties`` it trades with anyone.
        ``rpc_urls`` puts a chain's node behind another URL (a proxy a test controls)."""
        keys = like.keys if like else {"eth": await fresh_keys(), "usd": await fresh_keys()}
        node_key = like.node_key if like else NodeKey(secrets.token_bytes(32))
        store = await Store.open(url or str(tmp_path / f"{name}.sqlite3"))
        adapters = {
            chain: EvmAdapter(
                EvmSettings.from_mapping(
                    {
                        "rpc_url": (rpc_urls or {}).get(chain, anvil.rpc_url),
                        "contract": htlc_address,
                        "private_key": keys[chain],
                        "name": chain,
                        "finality_depth": FINALITY,
                        "poll_interval_s": 0.2,
                    }
                ),
                store,
            )
            for chain in ("eth", "usd")
        }
        for adapter in adapters.values():
            await adapter.start()
        engine = Engine(store, adapters, tick=timedelta(seconds=0.3), clock=clock, limits=limits)
        capture = Capture(
            engine,
            node_key,
            CaptureSettings(
                node_id=name,
                leg1_duration=timedelta(minutes=60),
                leg2_duration=timedelta(minutes=30),
                policy=POLICY,
                finality_depth={"eth": FINALITY, "usd": FINALITY},
                counterparty_keys=counterparties or {},
                # Most desks here meet without configuring each other; tests/adversarial shows the refusal.
                allow_unknown_counterparties=counterparties is None,
            ),
        )
        desk = Desk(name, store, engine, capture, adapters, keys, node_key=node_key)
        await engine.resume()
        desk.task = asyncio.create_task(run_desk(engine, adapters), name=f"desk-{name}")
        desks.append(desk)
        return desk

    yield make
    for desk in desks:
        await stop(desk)


async def run_desk(engine: Engine, adapters: dict[str, EvmAdapter]) -> None:
    """What the daemon runs: each chain's supervised loop and the engine, until cancelled."""
    async with asyncio.TaskGroup() as tasks:
        for chain, adapter in adapters.items():
            tasks.create_task(ChainLoop(chain, adapter).run(), name=f"chain-{chain}")
        tasks.create_task(engine.run(), name="engine")


async def stop(desk: Desk) -> None:
    """Stop a desk as a crash would leave it: the engine and chain loops cancelled, connections closed."""
    if desk.task is None:
        return
    desk.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await desk.task
    desk.task = None
    for adapter in desk.adapters.values():
        await adapter.close()
    await desk.store.close()


@pytest.fixture
async def gate(anvil: Anvil) -> AsyncIterator[NodeGate]:
    """A proxy in front of anvil that a test makes hang or go down; give its URL to a desk's chain."""
    port = urlsplit(anvil.rpc_url).port
    assert port is not None
    proxy = NodeGate(port)
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def miner(anvil: Anvil) -> AsyncIterator[None]:
    """A block every 200 ms, so confirmations accrue as on a live chain."""

    async def mine() -> None:
        while True:
            await asyncio.to_thread(anvil.rpc, "evm_mine")
            await asyncio.sleep(0.2)

    task = asyncio.create_task(mine(), name="anvil-miner")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
