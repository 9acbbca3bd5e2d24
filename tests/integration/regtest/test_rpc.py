"""bitcoind's JSON-RPC surface: auth (password and cookie), framing, batches, error codes, JSON shapes."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fixtures.bitcoin_node import BitcoinNode, BitcoinRpcError, free_port, node_kind

pytestmark = pytest.mark.bitcoind


def _auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def _post(node: BitcoinNode, body: Any, auth: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(node.rpc_url, data=json.dumps(body), headers={"Authorization": auth}) as resp,
    ):
        return resp.status, await resp.text()


async def test_cookie_only_without_a_password(tmp_path: Path) -> None:
    """bitcoind writes `.cookie` only when no -rpcpassword is given; a client configured with the cookie of a
    password-protected node would read a stale or missing file."""
    with_password = BitcoinNode(kind=node_kind(), datadir=tmp_path / "password", rpc_port=free_port())
    with_cookie = BitcoinNode(
        kind=node_kind(), datadir=tmp_path / "cookie", rpc_port=free_port(), cookie_auth=True
    )
    try:
        await with_password.start()
        await with_cookie.start()
        assert not with_password.cookie_path.exists()
        assert with_cookie.cookie_path.stat().st_mode & 0o777 == 0o600
        user, password = with_cookie.cookie_path.read_text().split(":", 1)
        assert user == "__cookie__"
        status, text = await _post(with_cookie, {"method": "getblockcount", "id": 7}, _auth(user, password))
        assert status == 200
        assert json.loads(text) == {"result": 0, "error": None, "id": 7}
        status, _ = await _post(with_cookie, {"method": "getblockcount"}, _auth(user, "wrong"))
        assert status == 401
    finally:
        await with_password.stop()
        await with_cookie.stop()
    assert not with_cookie.cookie_path.exists()  # removed at a clean stop, as bitcoind does


async def test_auth_batch_and_error_framing(bitcoin_node: BitcoinNode) -> None:
    node = bitcoin_node
    status, _ = await _post(node, {"method": "getblockcount"}, _auth(node.rpc_user, "wrong"))
    assert status == 401

    auth = _auth(node.rpc_user, node.rpc_password)
    status, text = await _post(node, {"method": "getblockcount", "id": 7}, auth)
    assert status == 200
    assert json.loads(text) == {"result": await node.rpc("getblockcount"), "error": None, "id": 7}

    status, text = await _post(node, {"method": "nosuchmethod", "id": 1}, auth)
    assert status == 404
    assert json.loads(text)["error"] == {"code": -32601, "message": "Method not found"}

    batch = [{"method": "getblockcount", "id": 1}, {"method": "getblockhash", "params": [10**6], "id": 2}]
    status, text = await _post(node, batch, auth)
    assert status == 200
    first, second = json.loads(text)
    assert first["error"] is None and first["id"] == 1
    assert second["error"] == {"code": -8, "message": "Block height out of range"}


async def test_block_and_transaction_shapes(bitcoin_node: BitcoinNode) -> None:
    node = bitcoin_node
    txid, _ = await node.fund(node.miner_address, 30_000)
    entry = await node.rpc("getmempoolentry", txid)
    assert {"vsize", "weight", "time", "height", "wtxid", "fees", "depends", "spentby"} <= set(entry)
    raw = await node.rpc("getrawtransaction", txid)
    assert (await node.rpc("getrawtransaction", txid, True))["hex"] == raw
    [block_hash] = await node.mine(1)

    with pytest.raises(BitcoinRpcError) as err:
        await node.rpc("getrawtransaction", txid)
    assert err.value.code == -5
    assert err.value.message.startswith("No such mempool transaction. Use -txindex or provide a block hash")
    confirmed = await node.rpc("getrawtransaction", txid, 1, block_hash)
    assert confirmed["in_active_chain"] is True
    assert confirmed["confirmations"] == 1
    assert confirmed["blockhash"] == block_hash

    header = await node.rpc("getblockheader", block_hash)
    assert header["height"] == await node.rpc("getblockcount")
    block = await node.rpc("getblock", block_hash, 2)
    coinbase, payment = block["tx"][0], next(t for t in block["tx"] if t["txid"] == txid)
    assert "coinbase" in coinbase["vin"][0] and "fee" not in coinbase
    assert payment["vout"][0]["scriptPubKey"]["address"] == node.miner_address
    assert payment["vout"][0]["scriptPubKey"]["type"] == "witness_v0_keyhash"
    assert payment["fee"] > 0
    raw_block = await node.rpc("getblock", block_hash, 0)
    assert raw_block.startswith(header_hex := await node.rpc("getblockheader", block_hash, False))
    assert len(header_hex) == 160

    # Amounts are JSON numbers with 8 decimals, as bitcoind writes them.
    auth = _auth(node.rpc_user, node.rpc_password)
    _, text = await _post(node, {"method": "gettxout", "params": [txid, 0], "id": 1}, auth)
    assert '"value": 0.00030000' in text
    assert json.loads(text, parse_float=Decimal)["result"]["value"] == Decimal("0.00030000")
    assert await node.rpc("gettxout", "00" * 32, 0) is None


async def test_fee_estimate_and_network_info(bitcoin_node: BitcoinNode) -> None:
    node = bitcoin_node
    # bitcoind's answer without fee history: no feerate, and the target it could use, 0.
    estimate = await node.rpc("estimatesmartfee", 6)
    assert estimate == {"errors": ["Insufficient data or no feerate found"], "blocks": 0}
    with pytest.raises(BitcoinRpcError) as err:
        await node.rpc("estimatesmartfee", 0)
    assert err.value.code == -8
    info = await node.rpc("getnetworkinfo")
    assert info["version"] >= 280000
    if node.kind == "kernel":
        assert "kernelnode" in info["subversion"]
    chain = await node.rpc("getblockchaininfo")
    assert chain["chain"] == "regtest"
    assert chain["bestblockhash"] == await node.rpc("getbestblockhash")
    assert await node.rpc("uptime") >= 0
