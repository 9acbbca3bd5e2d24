"""regtest/up and regtest/down on private ports and state: endpoints printed, nodes answer, chain kept,
everything stopped again."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import aiohttp
import pytest

from tests.fixtures.anvil import Anvil
from tests.fixtures.bitcoin_node import BitcoinNode, free_port

pytestmark = [pytest.mark.bitcoind, pytest.mark.anvil, pytest.mark.mqtt]

REGTEST = Path(__file__).resolve().parents[3] / "regtest"
_ADDRESS = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"  # BIP173's example key hash, as a regtest address


async def _run(script: str, env: dict[str, str], *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(REGTEST / script),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, text
    return text


def _own_nodes_env() -> dict[str, str]:
    """The environment without an operator's nodes: these tests are about the nodes `up` starts."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SETTLERD_TEST_")}


async def _post(url: str, body: dict[str, object]) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        reply: dict[str, object] = await resp.json(content_type=None)
        return reply


async def test_up_prints_endpoints_and_down_stops_them(tmp_path: Path) -> None:
    env = _own_nodes_env()
    env.update(
        SETTLERD_REGTEST_STATE=str(tmp_path / "state"),
        SETTLERD_BTC_RPC_PORT=str(free_port()),
        SETTLERD_BTC_P2P_PORT=str(free_port()),
        SETTLERD_ANVIL_PORT=str(free_port()),
    )
    try:
        out = await _run("up", env)
        btc_url = re.search(r"http://\S+:\S+@127\.0\.0\.1:\d+", out)
        assert btc_url is not None, out
        assert f"127.0.0.1:{env['SETTLERD_ANVIL_PORT']}" in out
        assert "mqtt://127.0.0.1:1883" in out
        mined = await _post(btc_url.group(0), {"method": "generatetoaddress", "params": [3, _ADDRESS]})
        assert mined["error"] is None
        chain_id = await _post(
            f"http://127.0.0.1:{env['SETTLERD_ANVIL_PORT']}",
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
        )
        assert chain_id["result"] == "0x7a69"

        stopped = await _run("down", env)
        assert "stopped" in stopped and "anvil: stopped" in stopped
        assert not list((tmp_path / "state").glob("*.pid"))

        again = await _run("up", env)
        assert "height 3" in again
    finally:
        await _run("down", env)


async def _heights(btc_url: str, evm_url: str) -> tuple[int, int]:
    btc = await _post(btc_url, {"method": "getblockcount"})
    evm = await _post(evm_url, {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"})
    return int(str(btc["result"])), int(str(evm["result"]), 16)


async def test_block_time_mines_both_chains_until_down(tmp_path: Path) -> None:
    env = _own_nodes_env()
    env.update(
        SETTLERD_REGTEST_STATE=str(tmp_path / "state"),
        SETTLERD_BTC_RPC_PORT=str(free_port()),
        SETTLERD_BTC_P2P_PORT=str(free_port()),
        SETTLERD_ANVIL_PORT=str(free_port()),
    )
    evm_url = f"http://127.0.0.1:{env['SETTLERD_ANVIL_PORT']}"
    try:
        out = await _run("up", env, "--block-time", "0.5s")
        assert "one block on each chain every 0.5s" in out, out
        btc_url = re.search(r"http://\S+:\S+@127\.0\.0\.1:\d+", out)
        assert btc_url is not None, out
        first = await _heights(btc_url.group(0), evm_url)
        for _ in range(40):  # 20 s at most: four intervals are enough on an idle machine
            await asyncio.sleep(0.5)
            now = await _heights(btc_url.group(0), evm_url)
            if now[0] >= first[0] + 3 and now[1] >= first[1] + 3:
                break
        assert now[0] >= first[0] + 3 and now[1] >= first[1] + 3, (first, now)
        stopped = await _run("down", env)
        assert "miner: stopped" in stopped, stopped
    finally:
        await _run("down", env)


async def test_up_uses_running_nodes_and_down_leaves_them(
    tmp_path: Path, bitcoin_node: BitcoinNode, anvil: Anvil
) -> None:
    env = _own_nodes_env()
    env.update(
        SETTLERD_REGTEST_STATE=str(tmp_path / "state"),
        SETTLERD_TEST_BITCOIN_RPC_URL=bitcoin_node.rpc_url,
        SETTLERD_TEST_BITCOIN_RPC_USER=bitcoin_node.rpc_user,
        SETTLERD_TEST_BITCOIN_RPC_PASSWORD=bitcoin_node.rpc_password,
        SETTLERD_TEST_EVM_RPC_URL=anvil.rpc_url,
    )
    height = await bitcoin_node.rpc("getblockcount")
    try:
        out = await _run("up", env)
        host_port = bitcoin_node.rpc_url.removeprefix("http://")
        assert f"Bitcoin (external, regtest):  http://{bitcoin_node.rpc_user}:" in out, out
        assert f"@{host_port}   height {height}" in out, out
        assert f"EVM (anvil, chain id 31337): {anvil.rpc_url}" in out, out
        assert not (tmp_path / "state" / "bitcoin.pid").exists()
        assert not (tmp_path / "state" / "anvil.pid").exists()
    finally:
        stopped = await _run("down", env)
    assert "an external node, left running" in stopped, stopped
    assert await bitcoin_node.rpc("getblockcount") >= height
    assert anvil.rpc("eth_chainId") == "0x7a69"
