"""The Bitcoin adapter passes the conformance suite every chain adapter runs, on the regtest node."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from settlerd_bitcoin import BitcoinAdapter, factory

from settlerd.adapters import ChainAdapter
from settlerd.store import Store
from settlerd.testing.conformance import AdapterConformance
from tests.fixtures.timeouts import TIMEOUT_FACTOR

from .desks import POLL_S

COINS = 4  # confirmed coins per wallet: every lock of the suite spends one of its own
COIN_SATS = 10_000_000
BLOCK_INTERVAL = timedelta(minutes=10)  # the adapter's default: what one regtest block stands for


@pytest.mark.bitcoind
class TestBitcoinConformance(AdapterConformance):
    amount = 1_000_000
    finality_depth = 3
    wait_s = 30.0 * TIMEOUT_FACTOR
    node: ClassVar[Any]

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def regtest(cls, bitcoin_node: Any) -> None:
        cls.node = bitcoin_node

    async def new_adapter(self, role: str, stack: contextlib.AsyncExitStack) -> ChainAdapter:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"conformance-{role}-")))
        store = await Store.open(f"sqlite:///{workdir / 'settlerd.sqlite3'}")
        stack.push_async_callback(store.close)
        settings = {
            "rpc_url": self.node.rpc_url, "rpc_user": self.node.rpc_user,
            "rpc_password": self.node.rpc_password, "network": "regtest", "seed": os.urandom(32).hex(),
            "birthday_height": await self.node.rpc("getblockcount") + 1, "name": "bitcoin",
            "finality_depth": self.finality_depth, "poll_interval": POLL_S,
        }  # fmt: skip
        return factory(settings, store)

    async def fund(self, adapter: ChainAdapter) -> None:
        assert isinstance(adapter, BitcoinAdapter)
        for _ in range(COINS):
            await self.node.fund(await adapter.receive_address(), COIN_SATS)
        await self.node.mine(1)

    async def mine(self, blocks: int) -> None:
        await self.node.mine(blocks)

    async def reorg(self, depth: int) -> None:
        await self.node.reorg(depth)

    async def advance(self, by: timedelta) -> None:
        await self.node.mine(max(1, math.ceil(by / BLOCK_INTERVAL)))

    async def node_height(self) -> int:
        return int(await self.node.rpc("getblockcount"))
