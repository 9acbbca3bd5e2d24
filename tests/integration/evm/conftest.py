"""An HTLC contract and a test token on the session's anvil, and adapters over a real SQLite store."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from settlerd_evm.adapter import EvmAdapter, EvmSettings
from settlerd_evm.artifact import load_artifact
from settlerd_evm.deploy import deploy_contract
from web3 import AsyncHTTPProvider, AsyncWeb3

from settlerd.adapters import ChainEvent, HtlcTerms, SignedTx, Tip
from settlerd.store.store import Store
from tests.fixtures.anvil import Anvil

HOUR = 3600


@pytest.fixture(scope="session")
async def htlc_address(anvil: Anvil) -> str:
    return await deploy_contract(anvil.rpc_url, anvil.keys[0])


@pytest.fixture(scope="session")
async def w3(anvil: Anvil) -> AsyncIterator[AsyncWeb3]:
    w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
    yield w3
    await w3.provider.disconnect()


async def send(w3: AsyncWeb3, key: str, tx: dict[str, Any]) -> Any:
    account = Account.from_key(key)
    tx = {
        "from": account.address,
        "nonce": await w3.eth.get_transaction_count(account.address, "pending"),
        **tx,
    }
    tx.setdefault("gas", 3_000_000)
    tx["chainId"] = await w3.eth.chain_id
    tx["maxFeePerGas"] = 10**11
    tx["maxPriorityFeePerGas"] = 10**9
    signed = account.sign_transaction(tx)
    return await w3.eth.wait_for_transaction_receipt(
        await w3.eth.send_raw_transaction(signed.raw_transaction)
    )


@pytest.fixture(scope="session")
async def token(anvil: Anvil, w3: AsyncWeb3) -> Any:
    """A TestToken with a balance for every dev account."""
    art = load_artifact("test/TestTokens.json")["TestToken"]
    receipt = await send(w3, anvil.keys[0], {"data": art["bytecode"]})
    contract = w3.eth.contract(address=receipt["contractAddress"], abi=art["abi"])
    for key in anvil.keys:
        data = contract.encode_abi("mint", [Account.from_key(key).address, 10**15])
        await send(w3, anvil.keys[0], {"to": contract.address, "data": data})
    return contract


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(str(tmp_path / "settlerd.sqlite"))
    yield s
    await s.close()


MakeAdapter = Callable[..., Awaitable[EvmAdapter]]


@pytest.fixture
async def make_adapter(anvil: Anvil, htlc_address: str) -> AsyncIterator[MakeAdapter]:
    """Started adapters (scanner polled by hand, never by timer), all closed at the end."""
    started: list[EvmAdapter] = []

    async def make(key: str, store: Any, **overrides: Any) -> EvmAdapter:
        settings = {
            "rpc_url": anvil.rpc_url, "contract": htlc_address, "private_key": key,
            "chain_id": anvil.chain_id, "finality_depth": 2, "poll_interval_s": 3600.0, **overrides,
        }  # fmt: skip
        adapter = EvmAdapter(EvmSettings.from_mapping(settings), store)
        started.append(adapter)
        await adapter.start()
        return adapter

    yield make
    for adapter in started:
        await adapter.close()


async def journal_and_broadcast(store: Store, adapter: EvmAdapter, tx: SignedTx) -> Any:
    """What the engine does (S4): persist, then broadcast; returns the receipt."""
    async with store.write() as w:
        await w.record_signed_tx(tx)
    await adapter.broadcast(tx)
    return await adapter.w3.eth.wait_for_transaction_receipt(tx.txid)


def new_secret() -> tuple[bytes, bytes]:
    preimage = secrets.token_bytes(32)
    return preimage, sha256(preimage).digest()


async def terms_for(
    w3: AsyncWeb3, asset: str, amount: int, sender: str, recipient: str
) -> tuple[bytes, HtlcTerms]:
    preimage, hashlock = new_secret()
    now = int((await w3.eth.get_block("latest"))["timestamp"])
    return preimage, HtlcTerms("evm", asset, amount, hashlock, recipient, sender, now + HOUR)


def drain(adapter: EvmAdapter) -> list[ChainEvent]:
    return [e for e in adapter.take_events() if not isinstance(e, Tip)]


async def pass_time(anvil: Anvil, seconds: int) -> None:
    anvil.rpc("evm_increaseTime", seconds)
    anvil.rpc("evm_mine")
