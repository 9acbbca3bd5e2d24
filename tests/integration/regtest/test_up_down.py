"""regtest/up and regtest/down on private ports and state: endpoints printed, nodes answer, chain kept,
everything stopped again."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import aiohttp
import pytest

from tests.fixtures.bitcoin_node import free_port

pytestmark = [pytest.mark.bitcoind, pytest.mark.anvil, pytest.mark.mqtt]

REGTEST = Path(__file__).resolve().parents[3] / "regtest"
_ADDRESS = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"  # BIP173's example key hash, as a regtest address


async def _run(script: str, env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(REGTEST / script), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, text
    return text


async def _post(url: str, body: dict[str, object]) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        reply: dict[str, object] = await resp.json(content_type=None)
        return reply


async def test_up_prints_endpoints_and_down_stops_them(tmp_path: Path) -> None:
    env = dict(os.environ)
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
