"""Mempool rules beyond scripts (maturity, BIP68, fees, duplicates) and generateblock through the kernel."""

from __future__ import annotations

import pytest
from kernelnode.codec import Tx, hash_hex
from kernelnode.testwallet import Key, p2wsh_spk, sign_p2wpkh

from tests.fixtures.bitcoin_node import BitcoinNode, BitcoinRpcError
from tests.integration.regtest.helpers import (
    funded,
    sign_p2wsh_spend,
    signed_p2wpkh_spend,
    spend,
)

pytestmark = pytest.mark.bitcoind

VALUE = 100_000
OP_CSV_DROP_TRUE = b"\xb2\x75\x51"  # <n> OP_CHECKSEQUENCEVERIFY OP_DROP OP_TRUE


async def _reject(node: BitcoinNode, tx: Tx) -> tuple[int, str]:
    with pytest.raises(BitcoinRpcError) as err:
        await node.rpc("sendrawtransaction", tx.serialize().hex())
    return err.value.code, err.value.message


async def test_immature_coinbase_spend_is_rejected(bitcoin_node: BitcoinNode) -> None:
    key = Key.from_seed("young miner")
    [block_hash] = await bitcoin_node.mine(1, key.address)
    coinbase = (await bitcoin_node.rpc("getblock", block_hash, 2))["tx"][0]
    amount = round(coinbase["vout"][0]["value"] * 100_000_000)
    tx = signed_p2wpkh_spend(key, (coinbase["txid"], 0), amount, key.p2wpkh_spk)
    assert await _reject(bitcoin_node, tx) == (
        -26,
        "bad-txns-premature-spend-of-coinbase, tried to spend coinbase at depth 1",
    )


async def test_relative_locktime_and_fee_rules(bitcoin_node: BitcoinNode) -> None:
    # A P2WSH output that only CSV guards: 3 blocks after it confirms.
    script = b"\x53" + OP_CSV_DROP_TRUE
    outpoint = await funded(bitcoin_node, p2wsh_spk(script), VALUE)
    early = spend(outpoint, VALUE, Key.from_seed("csv").p2wpkh_spk, sequence=3)
    early.vin[0].witness = [script]
    assert await _reject(bitcoin_node, early) == (-26, "non-BIP68-final")
    await bitcoin_node.mine(2)
    txid = await bitcoin_node.rpc("sendrawtransaction", early.serialize().hex())
    assert txid in await bitcoin_node.rpc("getrawmempool")

    key = Key.from_seed("fee rules")
    outpoint = await funded(bitcoin_node, key.p2wpkh_spk, VALUE)
    overspend = signed_p2wpkh_spend(key, outpoint, VALUE, key.p2wpkh_spk, fee=-1)
    assert await _reject(bitcoin_node, overspend) == (
        -26,
        "bad-txns-in-belowout, value in (0.001) < value out (0.00100001)",
    )
    free = signed_p2wpkh_spend(key, outpoint, VALUE, key.p2wpkh_spk, fee=0)
    assert await _reject(bitcoin_node, free) == (-26, f"min relay fee not met, 0 < {free.vsize}")


async def test_confirmed_transaction_is_already_in_utxo_set(bitcoin_node: BitcoinNode) -> None:
    key = Key.from_seed("confirmed twice")
    outpoint = await funded(bitcoin_node, key.p2wpkh_spk, VALUE)
    tx = signed_p2wpkh_spend(key, outpoint, VALUE, key.p2wpkh_spk)
    await bitcoin_node.rpc("sendrawtransaction", tx.serialize().hex())
    await bitcoin_node.mine(1)
    assert await _reject(bitcoin_node, tx) == (-27, "Transaction outputs already in utxo set")


async def test_generateblock_takes_raw_and_mempool_transactions(bitcoin_node: BitcoinNode) -> None:
    key = Key.from_seed("generateblock")
    first = await funded(bitcoin_node, key.p2wpkh_spk, VALUE)
    second = await funded(bitcoin_node, key.p2wpkh_spk, VALUE)
    in_pool = signed_p2wpkh_spend(key, first, VALUE, key.p2wpkh_spk)
    pool_txid = await bitcoin_node.rpc("sendrawtransaction", in_pool.serialize().hex())
    raw = signed_p2wpkh_spend(key, second, VALUE, key.p2wpkh_spk)
    result = await bitcoin_node.rpc(
        "generateblock", bitcoin_node.miner_address, [pool_txid, raw.serialize().hex()]
    )
    block = await bitcoin_node.rpc("getblock", result["hash"])
    assert block["tx"][1:] == [pool_txid, hash_hex(raw.txid)]
    assert await bitcoin_node.rpc("getbestblockhash") == result["hash"]
    assert pool_txid not in await bitcoin_node.rpc("getrawmempool")


async def test_generateblock_with_an_invalid_transaction_is_not_mined(bitcoin_node: BitcoinNode) -> None:
    key = Key.from_seed("kernel says no")
    outpoint = await funded(bitcoin_node, key.p2wpkh_spk, VALUE)
    tx = spend(outpoint, VALUE, key.p2wpkh_spk)
    sign_p2wpkh(tx, 0, Key.from_seed("someone else"), VALUE)
    tip = await bitcoin_node.rpc("getbestblockhash")
    with pytest.raises(BitcoinRpcError) as err:
        await bitcoin_node.rpc("generateblock", bitcoin_node.miner_address, [tx.serialize().hex()])
    assert err.value.code == -25
    assert err.value.message.startswith("TestBlockValidity failed")
    assert await bitcoin_node.rpc("getbestblockhash") == tip
    # A good P2WSH spend still goes through afterwards.
    script = bytes([33]) + key.pubkey + b"\xac"
    wsh = await funded(bitcoin_node, p2wsh_spk(script), VALUE)
    good = sign_p2wsh_spend(spend(wsh, VALUE, key.p2wpkh_spk), key, script, VALUE)
    result = await bitcoin_node.rpc("generateblock", bitcoin_node.miner_address, [good.serialize().hex()])
    assert await bitcoin_node.rpc("getbestblockhash") == result["hash"]
