"""``settlerd doctor`` for an EVM chain: node, chain id, sync, client, HTLC contract code and account balance.

The checks use a provider of their own without web3's retries, each call cut off after ``CALL_TIMEOUT_S``,
so a dead node is one FAIL line within seconds. Nothing is signed or sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit, urlunsplit

from web3 import AsyncHTTPProvider, AsyncWeb3

from settlerd.adapters import Check, CheckStatus

from .artifact import htlc

if TYPE_CHECKING:
    from .adapter import EvmAdapter

# Long enough for a loaded node to answer eth_getCode, short enough that a dead one is seen at once.
CALL_TIMEOUT_S = 5.0
WEI_PER_ETH = Decimal(10**18)

T = TypeVar("T")


def _public_url(url: str) -> str:
    """The RPC URL as printed: no ``user:password@``, no path or query (providers put API keys there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    hidden = "/…" if parts.path.strip("/") or parts.query else ""
    return urlunsplit((parts.scheme, netloc, "", "", "")) + hidden


async def diagnose(adapter: EvmAdapter) -> list[Check]:
    s = adapter.settings
    name = adapter.name
    url = _public_url(s.rpc_url)
    w3 = AsyncWeb3(AsyncHTTPProvider(s.rpc_url, exception_retry_configuration=None))

    async def call(awaitable: Awaitable[T]) -> T:
        async with asyncio.timeout(CALL_TIMEOUT_S):
            return await awaitable

    try:
        try:
            client = await call(w3.client_version)
            chain_id = int(await call(w3.eth.chain_id))
        except Exception as exc:  # connection refused, timeouts, HTTP errors, a non-JSON-RPC server
            found = f"no answer within {CALL_TIMEOUT_S:.0f} s" if isinstance(exc, TimeoutError) else str(exc)
            return [
                Check(
                    f"{name}.node",
                    CheckStatus.FAIL,
                    f"cannot use the node at {url}: {found or type(exc).__name__}",
                    f"start the node or fix chains.{name}.rpc_url",
                )
            ]
        checks = [
            Check(f"{name}.node", CheckStatus.OK, f"{url} answers"),
            _chain_id(adapter, chain_id),
        ]
        if checks[-1].status is CheckStatus.FAIL:
            return checks  # the rest would describe a chain this one must not use
        syncing = await call(w3.eth.syncing)
        if syncing:
            current = syncing.get("currentBlock", "?") if isinstance(syncing, dict) else "?"
            highest = syncing.get("highestBlock", "?") if isinstance(syncing, dict) else "?"
            checks.append(
                Check(
                    f"{name}.sync",
                    CheckStatus.FAIL,
                    f"node is syncing: block {current} of {highest}",
                    "wait for the node to finish syncing; settlerd would miss or misdate HTLC events",
                )
            )
        else:
            height = int(await call(w3.eth.block_number))
            checks.append(Check(f"{name}.sync", CheckStatus.OK, f"synced at block {height}"))
        checks.append(Check(f"{name}.version", CheckStatus.OK, str(client)))
        code = "0x" + bytes(await call(w3.eth.get_code(adapter.contract))).hex()
        checks.append(_contract(adapter, code))
        balance = int(await call(w3.eth.get_balance(adapter.address)))
        checks.append(_balance(adapter, balance))
        return checks
    finally:
        await w3.provider.disconnect()


def _chain_id(adapter: EvmAdapter, found: int) -> Check:
    name, expected = adapter.name, adapter.settings.chain_id
    if expected is None:
        return Check(
            f"{name}.chain_id",
            CheckStatus.WARN,
            f"node is on chain id {found}; chains.{name}.chain_id is not set, so any network is accepted",
            f"set chains.{name}.chain_id = {found} if that is the intended network",
        )
    if found != expected:
        return Check(
            f"{name}.chain_id",
            CheckStatus.FAIL,
            f"node is on chain id {found}, chains.{name}.chain_id = {expected}",
            f"point chains.{name}.rpc_url at a node of chain {expected}, or correct chains.{name}.chain_id",
        )
    return Check(f"{name}.chain_id", CheckStatus.OK, f"chain id {found} as configured")


def _contract(adapter: EvmAdapter, code: str) -> Check:
    name = adapter.name
    if code == htlc()["deployedBytecode"].lower():
        return Check(f"{name}.contract", CheckStatus.OK, f"{adapter.contract} holds settlerd's HTLC contract")
    what = "no code" if code == "0x" else f"other code ({len(code) // 2 - 1} bytes) than settlerd's HTLC"
    return Check(
        f"{name}.contract",
        CheckStatus.FAIL,
        f"{adapter.contract} holds {what}",
        f"deploy it with `settlerd contract deploy` and set chains.{name}.contract to the printed address",
    )


def _balance(adapter: EvmAdapter, wei: int) -> Check:
    name = adapter.name
    found = f"account {adapter.address} holds {Decimal(wei) / WEI_PER_ETH:f} ETH"
    if wei == 0:
        return Check(
            f"{name}.balance",
            CheckStatus.WARN,
            found,
            f"send ETH to {adapter.address}: every lock, claim and refund pays gas from it",
        )
    return Check(f"{name}.balance", CheckStatus.OK, found)
