"""Full-RBF as Bitcoin Core 28+: a conflicting spend replaces only by paying a higher feerate, at least the
evicted fees, and the incremental relay fee for its own size."""

from __future__ import annotations

import pytest
from kernelnode.codec import Tx, hash_hex
from kernelnode.mempool import format_money
from kernelnode.testwallet import Key

from tests.fixtures.bitcoin_node import BitcoinNode, BitcoinRpcError
from tests.integration.regtest.helpers import FEE, funded, signed_p2wpkh_spend

pytestmark = pytest.mark.bitcoind

VALUE = 200_000
# A DER signature is 71 or 72 bytes, so two spends alike differ by up to one vbyte (~1 % of ~110): a fee 5 %
# lower gives a lower feerate whichever signatures they drew.
LOWER_FEE = FEE * 95 // 100


def _btc_kvb(tx: Tx, fee: int = FEE) -> str:
    return f"0.{fee * 1000 // tx.vsize:08d} BTC/kvB"


async def test_replacement_needs_higher_feerate_and_fee(bitcoin_node: BitcoinNode) -> None:
    key = Key.from_seed("rbf owner")
    outpoint = await funded(bitcoin_node, key.p2wpkh_spk, VALUE)
    original = signed_p2wpkh_spend(key, outpoint, VALUE, Key.from_seed("first payee").p2wpkh_spk)
    original_txid = await bitcoin_node.rpc("sendrawtransaction", original.serialize().hex())
    child = signed_p2wpkh_spend(Key.from_seed("first payee"), (original_txid, 0), VALUE - FEE, key.p2wpkh_spk)
    child_txid = await bitcoin_node.rpc("sendrawtransaction", child.serialize().hex())

    # Sending the same transaction again answers its txid, as bitcoind does.
    assert await bitcoin_node.rpc("sendrawtransaction", original.serialize().hex()) == original_txid

    lower_rate = signed_p2wpkh_spend(
        key, outpoint, VALUE, Key.from_seed("second payee").p2wpkh_spk, fee=LOWER_FEE
    )
    replacement_id = hash_hex(lower_rate.txid)
    with pytest.raises(BitcoinRpcError) as err:
        await bitcoin_node.rpc("sendrawtransaction", lower_rate.serialize().hex())
    assert err.value.code == -26
    assert err.value.message == (
        f"insufficient fee, rejecting replacement {replacement_id}; "
        f"new feerate {_btc_kvb(lower_rate, LOWER_FEE)} <= old feerate {_btc_kvb(original)}"
    )

    # A higher feerate, but not enough to pay for the evicted child as well.
    cheap = signed_p2wpkh_spend(key, outpoint, VALUE, Key.from_seed("second payee").p2wpkh_spk, fee=1_500)
    with pytest.raises(BitcoinRpcError) as err:
        await bitcoin_node.rpc("sendrawtransaction", cheap.serialize().hex())
    assert err.value.code == -26
    assert err.value.message == (
        f"insufficient fee, rejecting replacement {hash_hex(cheap.txid)}, less fees than conflicting txs; "
        "0.000015 < 0.00002"
    )

    # More fees, but less extra than the incremental relay fee (1 sat/vB) for its own size.
    stingy = signed_p2wpkh_spend(key, outpoint, VALUE, Key.from_seed("second payee").p2wpkh_spk, fee=2_050)
    with pytest.raises(BitcoinRpcError) as err:
        await bitcoin_node.rpc("sendrawtransaction", stingy.serialize().hex())
    assert err.value.message == (
        f"insufficient fee, rejecting replacement {hash_hex(stingy.txid)}, "
        "not enough additional fees to relay; "
        f"0.0000005 < {format_money(stingy.vsize)}"
    )

    better = signed_p2wpkh_spend(key, outpoint, VALUE, Key.from_seed("second payee").p2wpkh_spk, fee=5_000)
    better_txid = await bitcoin_node.rpc("sendrawtransaction", better.serialize().hex())
    mempool = await bitcoin_node.rpc("getrawmempool")
    assert better_txid in mempool
    assert original_txid not in mempool
    assert child_txid not in mempool, "descendants of a replaced transaction are evicted with it"
    entry = await bitcoin_node.rpc("getmempoolentry", better_txid)
    assert entry["fees"]["base"] == pytest.approx(0.00005)
    assert entry["bip125-replaceable"] is True
