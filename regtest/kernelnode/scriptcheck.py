"""Input script verification with the kernel's interpreter (consensus flags, all of them).

The kernel's C API answers only valid/invalid. bitcoind's reject reason names the script error, so the
error text is derived: a re-run without the timelock flags tells a locktime failure; witness program
shape checks tell the witness errors; anything else is what a failed signature check gives under
consensus flags (a false top stack element).
"""

from __future__ import annotations

import hashlib

import pbk
from pbk.script import PrecomputedTransactionData

from .codec import Tx
from .script import witness_program

ALL_FLAGS = pbk.ScriptVerificationFlags.ALL
TIMELOCK_FLAGS = (
    pbk.ScriptVerificationFlags.CHECKLOCKTIMEVERIFY | pbk.ScriptVerificationFlags.CHECKSEQUENCEVERIFY
)

ERR_EVAL_FALSE = "Script evaluated without error but finished with a false/empty top stack element"
ERR_LOCKTIME = "Locktime requirement not satisfied"
ERR_WITNESS_EMPTY = "Witness program was passed an empty witness"
ERR_WITNESS_MISMATCH = "Witness program hash mismatch"
ERR_EQUALVERIFY = "Script failed an OP_EQUALVERIFY operation"
ERR_WITNESS_UNEXPECTED = "Witness provided for non-witness script"


def _hash160(data: bytes) -> bytes:
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest()


def _explain(tx: Tx, index: int, spk: bytes) -> str:
    txin = tx.vin[index]
    wp = witness_program(spk)
    if wp is None:
        if txin.witness and not (len(spk) == 23 and spk[0] == 0xA9):
            return ERR_WITNESS_UNEXPECTED
        return ERR_EVAL_FALSE
    version, program = wp
    if version != 0:
        return ERR_EVAL_FALSE
    if not txin.witness:
        return ERR_WITNESS_EMPTY
    if len(program) == 32 and hashlib.sha256(txin.witness[-1]).digest() != program:
        return ERR_WITNESS_MISMATCH
    if len(program) == 20:
        if len(txin.witness) != 2:
            return ERR_WITNESS_MISMATCH
        if _hash160(txin.witness[1]) != program:
            return ERR_EQUALVERIFY
    return ERR_EVAL_FALSE


def verify_inputs(tx: Tx, spent: list[tuple[int, bytes]]) -> str | None:
    """None when every input verifies, else bitcoind's script error text for the first failing input."""
    ktx = pbk.Transaction(tx.serialize())
    outputs = [pbk.TransactionOutput(pbk.ScriptPubkey(spk), value) for value, spk in spent]
    txdata = PrecomputedTransactionData(ktx, outputs)
    for i, (value, spk) in enumerate(spent):
        script = pbk.ScriptPubkey(spk)
        if _verify(script, value, ktx, txdata, i, ALL_FLAGS):
            continue
        if _verify(script, value, ktx, txdata, i, ALL_FLAGS & ~TIMELOCK_FLAGS):
            return ERR_LOCKTIME
        return _explain(tx, i, spk)
    return None


def _verify(
    script: pbk.ScriptPubkey,
    value: int,
    ktx: pbk.Transaction,
    txdata: PrecomputedTransactionData,
    index: int,
    flags: pbk.ScriptVerificationFlags,
) -> bool:
    try:
        return bool(script.verify(value, ktx, txdata, index, flags))
    except pbk.ScriptVerifyException:
        return False
