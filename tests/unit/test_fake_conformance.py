"""The fake chain adapter passes the conformance suite every adapter runs: the kit proves itself first."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from settlerd.adapters import ChainAdapter
from settlerd.testing import FakeChain, FakeChainAdapter
from settlerd.testing.conformance import AdapterConformance

CHAIN = FakeChain("fake", block_interval=timedelta(minutes=1))


class TestFakeChainConformance(AdapterConformance):
    amount = 10_000
    finality_depth = 2
    wait_s = 5.0

    async def new_adapter(self, role: str, stack: contextlib.AsyncExitStack) -> ChainAdapter:
        account = CHAIN.account(f"{role}-{CHAIN.next_serial()}")
        CHAIN.fund(account, CHAIN.native_asset, 100 * self.amount)
        return FakeChainAdapter(CHAIN, account, finality_depth=self.finality_depth)

    async def mine(self, blocks: int) -> None:
        CHAIN.mine(blocks)

    async def reorg(self, depth: int) -> None:
        CHAIN.reorg(depth)

    async def advance(self, by: timedelta) -> None:
        CHAIN.mine(max(1, -(-by // CHAIN.block_interval)))

    async def node_height(self) -> int:
        return CHAIN.height

    async def chain_now(self) -> datetime:
        return CHAIN.time
