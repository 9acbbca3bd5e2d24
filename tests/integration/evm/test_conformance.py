"""The EVM adapter passes the conformance suite every chain adapter runs, on anvil."""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from eth_account import Account
from settlerd_evm.adapter import EvmAdapter, EvmSettings

from settlerd.adapters import ChainAdapter
from settlerd.store import Store
from settlerd.testing.conformance import AdapterConformance
from tests.fixtures.anvil import Anvil
from tests.fixtures.timeouts import TIMEOUT_FACTOR

from .conftest import send

FUNDING_WEI = 10**19


@pytest.mark.anvil
class TestEvmConformance(AdapterConformance):
    amount = 10**15
    finality_depth = 2
    wait_s = 30.0 * TIMEOUT_FACTOR
    anvil: ClassVar[Anvil]
    htlc: ClassVar[str]
    w3: ClassVar[Any]

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def node(cls, anvil: Anvil, htlc_address: str, w3: Any) -> None:
        cls.anvil, cls.htlc, cls.w3 = anvil, htlc_address, w3

    async def new_adapter(self, role: str, stack: contextlib.AsyncExitStack) -> ChainAdapter:
        key = "0x" + secrets.token_hex(32)
        await send(self.w3, self.anvil.keys[0], {"to": Account.from_key(key).address, "value": FUNDING_WEI})
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"conformance-{role}-")))
        store = await Store.open(str(workdir / "settlerd.sqlite3"))
        stack.push_async_callback(store.close)
        settings = {
            "rpc_url": self.anvil.rpc_url, "contract": self.htlc, "private_key": key, "name": "evm",
            "chain_id": self.anvil.chain_id, "finality_depth": self.finality_depth, "poll_interval_s": 0.05,
        }  # fmt: skip
        return EvmAdapter(EvmSettings.from_mapping(settings), store)

    async def mine(self, blocks: int) -> None:
        for _ in range(blocks):
            self.anvil.rpc("evm_mine")

    async def reorg(self, depth: int) -> None:
        self.anvil.rpc("anvil_reorg", depth, [])

    async def advance(self, by: timedelta) -> None:
        self.anvil.rpc("evm_increaseTime", max(1, int(by.total_seconds()) + 1))
        self.anvil.rpc("evm_mine")

    async def node_height(self) -> int:
        return int(await self.w3.eth.block_number)

    async def chain_now(self) -> datetime:
        block = await self.w3.eth.get_block("latest")
        return datetime.fromtimestamp(int(block["timestamp"]), UTC)
