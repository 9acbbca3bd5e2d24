"""Transaction builders for the node's own tests: P2WPKH and P2WSH spends signed with coincurve (BIP143)."""

from __future__ import annotations

import hashlib

from kernelnode.codec import OutPoint, Tx, TxIn, TxOut, hex_hash
from kernelnode.script import push_int
from kernelnode.testwallet import Key, set_witness, sign_p2wpkh, sign_p2wsh

from tests.fixtures.bitcoin_node import BitcoinNode

FEE = 1_000  # sats; every test transaction here is under 250 vbytes, so this clears 1 sat/vB
RBF_SEQUENCE = 0xFFFFFFFD
OP_CHECKSIG = b"\xac"
OP_CLTV_DROP = b"\xb1\x75"


def spend(outpoint: tuple[str, int], value: int, to_spk: bytes, fee: int = FEE, **kw: int) -> Tx:
    txid, vout = outpoint
    return Tx(
        version=2,
        vin=[TxIn(OutPoint(hex_hash(txid), vout), b"", kw.get("sequence", RBF_SEQUENCE))],
        vout=[TxOut(value - fee, to_spk)],
        locktime=kw.get("locktime", 0),
    )


def signed_p2wpkh_spend(key: Key, outpoint: tuple[str, int], value: int, to_spk: bytes, fee: int = FEE) -> Tx:
    tx = spend(outpoint, value, to_spk, fee)
    sign_p2wpkh(tx, 0, key, value)
    return tx


def checksig_script(key: Key) -> bytes:
    return bytes([len(key.pubkey)]) + key.pubkey + OP_CHECKSIG


def cltv_script(key: Key, height: int) -> bytes:
    """<height> OP_CHECKLOCKTIMEVERIFY OP_DROP <pubkey> OP_CHECKSIG: the refund branch of an HTLC."""
    return push_int(height) + OP_CLTV_DROP + checksig_script(key)


def sign_p2wsh_spend(tx: Tx, key: Key, witness_script: bytes, value: int) -> Tx:
    sig = sign_p2wsh(tx, 0, key, witness_script, value)
    set_witness(tx, 0, [sig, witness_script])
    return tx


async def funded(node: BitcoinNode, spk: bytes, value: int) -> tuple[str, int]:
    """An output of `value` sats to `spk`, confirmed."""
    outpoint = await node.fund(spk, value)
    await node.mine(1)
    return outpoint


def sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()
