"""Mempool script checks run Bitcoin Core's interpreter; mined blocks are validated by the kernel."""

from __future__ import annotations

import hashlib
import os

import pytest
from kernelnode.script import push_int
from kernelnode.testwallet import Key, p2wsh_spk, set_witness, sign_p2wsh

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


def _htlc(hashlock: bytes, claim: Key, refund: Key, timelock: int) -> bytes:
    return (
        b"\x82\x01\x20\x88\xa8\x20"  # OP_SIZE 32 OP_EQUALVERIFY OP_SHA256 <32 bytes>
        + hashlock
        + b"\x87\x63\x21"  # OP_EQUAL OP_IF <33 bytes>
        + claim.pubkey
        + b"\x67"  # OP_ELSE
        + push_int(timelock)
        + b"\xb1\x75\x21"  # OP_CHECKLOCKTIMEVERIFY OP_DROP <33 bytes>
        + refund.pubkey
        + b"\x68\xac"  # OP_ENDIF OP_CHECKSIG
    )


async def test_htlc_claim_failures_name_bitcoinds_script_errors(bitcoin_node: BitcoinNode) -> None:
    claim, refund = Key.from_seed("htlc claimer"), Key.from_seed("htlc refunder")
    secret = os.urandom(32)
    script = _htlc(
        hashlib.sha256(secret).digest(), claim, refund, await bitcoin_node.rpc("getblockcount") + 50
    )
    outpoint = await funded(bitcoin_node, p2wsh_spk(script), VALUE)

    async def attempt(preimage: bytes, signer: Key) -> str:
        tx = spend(outpoint, VALUE, claim.p2wpkh_spk)
        set_witness(tx, 0, [sign_p2wsh(tx, 0, signer, script, VALUE), preimage, script])
        [verdict] = await bitcoin_node.rpc("testmempoolaccept", [tx.serialize().hex()])
        if verdict["allowed"]:
            return str(await bitcoin_node.rpc("sendrawtransaction", tx.serialize().hex()))
        assert verdict["reject-reason"].startswith("mandatory-script-verify-flag-failed")
        return str(verdict["reject-reason"])

    prefix = "mandatory-script-verify-flag-failed "
    # A wrong 32-byte preimage falls into the refund branch, whose CLTV fails first.
    assert await attempt(os.urandom(32), claim) == prefix + "(Locktime requirement not satisfied)"
    assert await attempt(secret + b"\x00", claim) == prefix + "(Script failed an OP_EQUALVERIFY operation)"
    assert await attempt(secret, refund) == prefix + (
        "(Script evaluated without error but finished with a false/empty top stack element)"
    )
    txid = await attempt(secret, claim)
    await bitcoin_node.mine(1)
    assert await _mined_in_tip(bitcoin_node, txid)
