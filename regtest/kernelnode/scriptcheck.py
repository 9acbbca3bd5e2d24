"""Input script verification with the kernel's interpreter (consensus flags, all of them).

The kernel's C API answers only valid/invalid. bitcoind's reject reason names the script error, so the
error text is derived: witness program shape checks, then a replay of segwit v0 scripts (scripttrace),
then a re-run without the timelock flags; failing all that, what a failed signature check gives under
consensus flags (a false top stack element).
"""

from __future__ import annotations

import hashlib

import pbk
from pbk.script import PrecomputedTransactionData

from .codec import Tx
from .script import witness_program
from .scripttrace import witness_v0_error

ALL_FLAGS = pbk.ScriptVerificationFlags.ALL
TIMELOCK_FLAGS = (
    pbk.ScriptVerificationFlags.CHECKLOCKTIMEVERIFY | pbk.ScriptVerificationFlags.CHECKSEQUENCEVERIFY
)

ERR_EVAL_FALSE = "Script evaluated without error but finished with a false/empty top stack element"
ERR_LOCKTIME = "Locktime requirement not satisfied"
ERR_WITNESS_EMPTY = "Witness program was passed an empty witness"
ERR_WITNESS_MISMATCH = "Witness program hash mismatch"
ERR_WITNESS_UNEXPECTED = "Witness provided for non-witness script"


def _explain(tx: Tx, index: int, spk: bytes, amount: int) -> str | None:
    """The script error bitcoind would name, or None when it cannot be told here."""
    txin = tx.vin[index]
    wp = witness_program(spk)
    if wp is None:
        if txin.witness and not (len(spk) == 23 and spk[0] == 0xA9):
            return ERR_WITNESS_UNEXPECTED
        return None
    version, program = wp
    if version != 0:
        return None
    if not txin.witness:
        return ERR_WITNESS_EMPTY
    if len(program) == 32 and hashlib.sha256(txin.witness[-1]).digest() != program:
        return ERR_WITNESS_MISMATCH
    if len(program) == 20:
        if len(txin.witness) != 2:
            return ERR_WITNESS_MISMATCH
        script = b"\x76\xa9\x14" + program + b"\x88\xac"
        return witness_v0_error(tx, index, script, txin.witness, amount)
    return witness_v0_error(tx, index, txin.witness[-1], txin.witness[:-1], amount)


def verify_inputs(tx: Tx, spent: list[tuple[int, bytes]]) -> str | None:
    """None when every input verifies, else bitcoind's script error text for the first failing input."""
    ktx = pbk.Transaction(tx.serialize())
    outputs = [pbk.TransactionOutput(pbk.ScriptPubkey(spk), value) for value, spk in spent]
    txdata = PrecomputedTransactionData(ktx, outputs)
    for i, (value, spk) in enumerate(spent):
        script = pbk.ScriptPubkey(spk)
        if _verify(script, value, ktx, txdata, i, ALL_FLAGS):
            continue
        explained = _explain(tx, i, spk, value)
        if explained is not None:
            return explained
        if _verify(script, value, ktx, txdata, i, ALL_FLAGS & ~TIMELOCK_FLAGS):
            return ERR_LOCKTIME
        return ERR_EVAL_FALSE
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
