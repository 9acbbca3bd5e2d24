"""BIP143 signature hashes (segwit v0), SIGHASH_ALL, shared by the script tracer and the test wallet."""

from __future__ import annotations

import struct

from .codec import Tx, ser_bytes, sha256d

SIGHASH_ALL = 0x01


def bip143_sighash(tx: Tx, index: int, script_code: bytes, amount: int, sighash: int = SIGHASH_ALL) -> bytes:
    prevouts = b"".join(i.prevout.txid + struct.pack("<I", i.prevout.vout) for i in tx.vin)
    sequences = b"".join(struct.pack("<I", i.sequence) for i in tx.vin)
    outputs = b"".join(struct.pack("<q", o.value) + ser_bytes(o.script_pubkey) for o in tx.vout)
    txin = tx.vin[index]
    preimage = (
        struct.pack("<i", tx.version)
        + sha256d(prevouts)
        + sha256d(sequences)
        + txin.prevout.txid
        + struct.pack("<I", txin.prevout.vout)
        + ser_bytes(script_code)
        + struct.pack("<q", amount)
        + struct.pack("<I", txin.sequence)
        + sha256d(outputs)
        + struct.pack("<I", tx.locktime)
        + struct.pack("<I", sighash)
    )
    return sha256d(preimage)
