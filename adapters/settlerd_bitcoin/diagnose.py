"""``settlerd doctor`` for a Bitcoin chain: node, network, sync, version, fee estimate and wallet.

Every RPC goes through a client of its own that never retries and is cut off after ``CALL_TIMEOUT_S``,
so a dead or hanging node is one FAIL line within seconds, not the daemon's minute of patient retries.
Nothing is written: the wallet balance is the one the daemon last saved in the store.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from settlerd.adapters import Check, CheckStatus

from .rpc import NodeAuthRefused, NodeUnavailable, RpcClient, RpcError

if TYPE_CHECKING:
    from .adapter import BitcoinAdapter

# Long enough for a loaded node to answer getblockchaininfo, short enough that a dead one is seen at once.
CALL_TIMEOUT_S = 5.0
# The oldest Bitcoin Core major release still maintained (the project keeps the latest three: 30, 29, 28);
# older ones get no security fixes. Encoded as getnetworkinfo's "version" (MMmmpp).
MIN_NODE_VERSION = 280000
# A node that has all blocks but the newest one or two is following the tip, not catching up.
MAX_HEADER_LAG = 2
SATS_PER_BTC = Decimal(100_000_000)


def _public_url(url: str) -> str:
    """The RPC URL as printed: any ``user:password@`` taken out."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _btc(value: int) -> str:
    return f"{Decimal(value) / SATS_PER_BTC:.8f} BTC"


async def diagnose(adapter: BitcoinAdapter) -> list[Check]:
    s = adapter.settings
    name = adapter.name
    url = _public_url(s.rpc_url)
    rpc = RpcClient(s.rpc_url, s.rpc_user, s.rpc_password, s.rpc_cookie_file, retry_for=0)

    async def call(method: str, *params: Any) -> Any:
        async with asyncio.timeout(CALL_TIMEOUT_S):
            return await rpc.call(method, *params)

    try:
        try:
            info = await call("getblockchaininfo")
        except NodeAuthRefused:
            return [
                Check(
                    f"{name}.node",
                    CheckStatus.FAIL,
                    f"the node at {url} refused our credentials",
                    f"set chains.{name}.rpc_user and rpc_password (or rpc_password_file, or "
                    "rpc_cookie_file) to what the node's rpcauth/rpcpassword accepts",
                )
            ]
        except (NodeUnavailable, TimeoutError, aiohttp.ClientError, OSError, RpcError) as exc:
            if isinstance(exc, TimeoutError):
                found = f"no answer from the node at {url} within {CALL_TIMEOUT_S:.0f} s"
            elif isinstance(exc, NodeUnavailable):  # its advice to retry is for the daemon: cut it
                found = str(exc).split("; gave up")[0]
            else:
                found = f"the node at {url} cannot be used: {exc}"
            return [
                Check(
                    f"{name}.node",
                    CheckStatus.FAIL,
                    found,
                    f"start bitcoind or fix chains.{name}.rpc_url",
                )
            ]
        checks = [Check(f"{name}.node", CheckStatus.OK, f"{url} answers, credentials accepted")]
        checks.append(_network(adapter, info))
        if checks[-1].status is CheckStatus.FAIL:
            return checks  # the rest would describe a node this chain must not use
        checks.append(_sync(adapter, info))
        checks.append(await _version(name, call))
        checks.append(await _fees(adapter, call))
        checks.append(await _wallet(adapter, int(info.get("blocks", 0))))
        return checks
    finally:
        await rpc.close()


def _network(adapter: BitcoinAdapter, info: dict[str, Any]) -> Check:
    name, net = adapter.name, adapter.settings.network
    chain = info.get("chain")
    if chain == net.chain:
        return Check(
            f"{name}.network", CheckStatus.OK, f"node runs {chain!r} as network {net.name!r} expects"
        )
    return Check(
        f"{name}.network",
        CheckStatus.FAIL,
        f"node runs chain {chain!r}, chains.{name}.network = {net.name!r} expects {net.chain!r}",
        f"point chains.{name}.rpc_url at a {net.name} node, or correct chains.{name}.network",
    )


def _sync(adapter: BitcoinAdapter, info: dict[str, Any]) -> Check:
    name = adapter.name
    blocks, headers = int(info.get("blocks", 0)), int(info.get("headers", 0))
    if adapter.settings.network.name == "regtest":
        # A regtest node leaves initial block download only once a block is mined less than a day ago.
        return Check(f"{name}.sync", CheckStatus.OK, f"regtest at height {blocks}")
    if info.get("initialblockdownload") or headers - blocks > MAX_HEADER_LAG:
        return Check(
            f"{name}.sync",
            CheckStatus.FAIL,
            f"node is catching up: {blocks} of {headers} blocks",
            "wait for the node to finish initial block download; settlerd would misjudge timelocks",
        )
    return Check(f"{name}.sync", CheckStatus.OK, f"synced at height {blocks}")


async def _version(name: str, call: Any) -> Check:
    try:
        net = await call("getnetworkinfo")
    except (RpcError, TimeoutError, NodeUnavailable, aiohttp.ClientError, OSError) as exc:
        return Check(f"{name}.version", CheckStatus.WARN, f"getnetworkinfo failed: {exc}", "check the node")
    raw, sub = net.get("version"), str(net.get("subversion", ""))
    # Bitcoin Core reports an integer; compatible nodes may not ("2.2.0"), so its age is unknown, not fatal.
    if not isinstance(raw, int) or isinstance(raw, bool):
        return Check(
            f"{name}.version",
            CheckStatus.WARN,
            f"{sub} reports version {raw!r}, not Bitcoin Core's MMmmpp integer: its age is unknown",
            "check that the node is a maintained release compatible with Bitcoin Core's RPC",
        )
    version = raw
    found = f"{sub} (version {version})"
    if version < MIN_NODE_VERSION:
        return Check(
            f"{name}.version",
            CheckStatus.WARN,
            f"{found} is older than {MIN_NODE_VERSION}, no longer maintained",
            "upgrade the node to a maintained Bitcoin Core release",
        )
    return Check(f"{name}.version", CheckStatus.OK, found)


async def _fees(adapter: BitcoinAdapter, call: Any) -> Check:
    name, policy = adapter.name, adapter.settings.fees
    try:
        estimate = await call("estimatesmartfee", policy.conf_target)
    except (RpcError, TimeoutError, NodeUnavailable, aiohttp.ClientError, OSError) as exc:
        estimate = {"errors": [str(exc)]}
    if isinstance(estimate, dict) and estimate.get("feerate"):
        rate = policy.from_estimate(estimate)
        return Check(
            f"{name}.fees",
            CheckStatus.OK,
            f"{rate} sat/vB for {policy.conf_target} blocks (within floor/cap)",
        )
    why = "; ".join(estimate.get("errors", [])) if isinstance(estimate, dict) else "malformed answer"
    floor = f"transactions pay the floor of {policy.floor} sat/vB"
    if adapter.settings.network.name == "regtest":
        # Without a fee market a regtest node has no estimate to give; the floor is what it accepts.
        return Check(f"{name}.fees", CheckStatus.OK, f"no estimate on regtest ({why}); {floor}")
    return Check(
        f"{name}.fees",
        CheckStatus.WARN,
        f"no fee estimate ({why}); {floor}",
        f"expected on a freshly started node; otherwise check chains.{name}.fee_floor suits the fee market",
    )


async def _wallet(adapter: BitcoinAdapter, node_height: int) -> Check:
    name = adapter.name
    try:
        async with asyncio.timeout(CALL_TIMEOUT_S):
            await adapter.scanner.load()
    except Exception as exc:  # a store or node problem is reported by its own check; this one only says so
        return Check(
            f"{name}.wallet", CheckStatus.WARN, f"wallet state not readable: {exc}", "see the store check"
        )
    tip = adapter.scanner.tip
    if tip < adapter.settings.birthday_height:
        return Check(
            f"{name}.wallet",
            CheckStatus.WARN,
            "not scanned yet; the daemon scans from "
            f"chains.{name}.birthday_height = {adapter.settings.birthday_height} on its first start",
            "start the daemon, then fund the address `GET /v1/wallets` shows",
        )
    balance = adapter.wallet.balance(tip)
    found = f"{_btc(balance)} spendable as scanned at height {tip} (node at {node_height})"
    if balance == 0:
        return Check(f"{name}.wallet", CheckStatus.WARN, found, "fund the address `GET /v1/wallets` shows")
    return Check(f"{name}.wallet", CheckStatus.OK, found)
