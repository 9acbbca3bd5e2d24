"""Mempool script checks run Bitcoin Core's interpreter; mined blocks are validated by the kernel."""

from __future__ import annotations

import pytest
from kernelnode.testwallet import Key, p2wsh_spk

from tests.fixtures.bitcoin_node import BitcoinNode, BitcoinRpcError
from tests.integration.regtest.helpers import (
    checksig_script,
    cltv_script,
    funded,
    sign_p2wsh_spend,
    signed_p2wpkh_spend,
    spend,
)

pytestmark = pytest.mark.bitcoind

VALUE = 100_000


async def _mined_in_tip(node: BitcoinNode, txid: str) -> bool:
    block = await node.rpc("getblock", await node.rpc("getbestblockhash"), 1)
    return txid in block["tx"]


async def test_p2wpkh_spend_is_accepted_and_mined(bitcoin_node: BitcoinNode) -> None:
    key = Key.from_seed("p2wpkh owner")
    outpoint = await funded(bitcoin_node, key.p2wpkh_spk, VALUE)
    tx = signed_p2wpkh_spend(key, outpoint, VALUE, Key.from_seed("payee").p2wpkh_spk)
    txid = await bitcoin_node.rpc("sendrawtransaction", tx.serialize().hex())
    assert txid in await bitcoin_node.rpc("getrawmempool")
    await bitcoin_node.mine(1)
    assert await _mined_in_tip(bitcoin_node, txid)
    assert await bitcoin_node.rpc("gettxout", outpoint[0], outpoint[1], True) is None


async def test_p2wsh_spend_is_accepted_and_mined(bitcoin_node: BitcoinNode) -> None:
    key = Key.from_seed("p2wsh owner")
    script = checksig_script(key)
    outpoint = await funded(bitcoin_node, p2wsh_spk(script), VALUE)
    tx = sign_p2wsh_spend(spend(outpoint, VALUE, key.p2wpkh_spk), key, script, VALUE)
    txid = await bitcoin_node.rpc("sendrawtransaction", tx.serialize().hex())
    await bitcoin_node.mine(1)
    assert await _mined_in_tip(bitcoin_node, txid)
    block = await bitcoin_node.rpc("getblock", await bitcoin_node.rpc("getbestblockhash"), 2)
    mined = next(t for t in block["tx"] if t["txid"] == txid)
    assert mined["vin"][0]["txinwitness"] == [w.hex() for w in tx.vin[0].witness]
    assert mined["fee"] == pytest.approx(0.00001)


async def test_bad_signature_is_rejected_with_script_error(bitcoin_node: BitcoinNode) -> None:
    key = Key.from_seed("victim")
    outpoint = await funded(bitcoin_node, key.p2wpkh_spk, VALUE)
    tx = signed_p2wpkh_spend(key, outpoint, VALUE, key.p2wpkh_spk)
    tx.vout[0].value -= 1  # the signature no longer commits to the outputs
    tx._raw = tx._stripped = b""
    with pytest.raises(BitcoinRpcError) as err:
        await bitcoin_node.rpc("sendrawtransaction", tx.serialize().hex())
    assert err.value.code == -26
    assert err.value.message == (
        "mandatory-script-verify-flag-failed "
        "(Script evaluated without error but finished with a false/empty top stack element)"
    )


async def test_spend_of_missing_output_is_rejected(bitcoin_node: BitcoinNode) -> None:
    key = Key.from_seed("nobody")
    tx = signed_p2wpkh_spend(key, ("11" * 32, 0), VALUE, key.p2wpkh_spk)
    with pytest.raises(BitcoinRpcError) as err:
        await bitcoin_node.rpc("sendrawtransaction", tx.serialize().hex())
    assert (err.value.code, err.value.message) == (-25, "bad-txns-inputs-missingorspent")
    [verdict] = await bitcoin_node.rpc("testmempoolaccept", [tx.serialize().hex()])
    assert verdict["allowed"] is False
    assert verdict["reject-reason"] == "missing-inputs"


async def test_cltv_spend_before_its_height_is_rejected(bitcoin_node: BitcoinNode) -> None:
    key = Key.from_seed("refunder")
    height = await bitcoin_node.rpc("getblockcount")
    lock_height = height + 10
    script = cltv_script(key, lock_height)
    outpoint = await funded(bitcoin_node, p2wsh_spk(script), VALUE)

    early = spend(outpoint, VALUE, key.p2wpkh_spk, locktime=lock_height)
    sign_p2wsh_spend(early, key, script, VALUE)
    with pytest.raises(BitcoinRpcError) as err:
        await bitcoin_node.rpc("sendrawtransaction", early.serialize().hex())
    assert (err.value.code, err.value.message) == (-26, "non-final")

    lying = spend(outpoint, VALUE, key.p2wpkh_spk, locktime=height)
    sign_p2wsh_spend(lying, key, script, VALUE)
    with pytest.raises(BitcoinRpcError) as err:
        await bitcoin_node.rpc("sendrawtransaction", lying.serialize().hex())
    assert (err.value.code, err.value.message) == (
        -26,
        "mandatory-script-verify-flag-failed (Locktime requirement not satisfied)",
    )

    await bitcoin_node.mine(lock_height - await bitcoin_node.rpc("getblockcount"))
    txid = await bitcoin_node.rpc("sendrawtransaction", early.serialize().hex())
    await bitcoin_node.mine(1)
    assert await _mined_in_tip(bitcoin_node, txid)
