"""Names the script error of a failed segwit v0 input, for bitcoind's reject text.

The kernel already decided that the input fails; this replays the witness script with the opcodes HTLC
and single-key scripts use, to find *where* it fails, and answers Bitcoin Core's ScriptErrorString for
that point. Anything it does not model (other opcodes, sighash types, code separators) answers None and
the caller falls back to a generic text. It never decides validity.
"""

from __future__ import annotations

import hashlib

import coincurve

from .codec import Tx
from .script import OP_1, OP_1NEGATE, OP_16, OP_PUSHDATA4, iter_ops
from .sighash import SIGHASH_ALL, bip143_sighash

LOCKTIME_THRESHOLD = 500_000_000
SEQUENCE_FINAL = 0xFFFFFFFF
SEQUENCE_DISABLE_FLAG = 1 << 31
SEQUENCE_TYPE_FLAG = 1 << 22
SEQUENCE_MASK = 0x0000FFFF

ERR = {
    "eval_false": "Script evaluated without error but finished with a false/empty top stack element",
    "cleanstack": "Stack size must be exactly one after execution",
    "stack": "Operation not valid with the current stack size",
    "unbalanced": "Invalid OP_IF construction",
    "verify": "Script failed an OP_VERIFY operation",
    "equalverify": "Script failed an OP_EQUALVERIFY operation",
    "checksigverify": "Script failed an OP_CHECKSIGVERIFY operation",
    "op_return": "OP_RETURN was encountered",
    "negative_locktime": "Negative locktime",
    "locktime": "Locktime requirement not satisfied",
}


class _Unmodelled(Exception):
    pass


class _Fail(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.text = ERR[key]


def _num(data: bytes, max_len: int = 4) -> int:
    if len(data) > max_len:
        raise _Unmodelled
    if not data:
        return 0
    value = int.from_bytes(data, "little")
    if data[-1] & 0x80:
        return -(value & ~(0x80 << (8 * (len(data) - 1))))
    return value


def _enc(n: int) -> bytes:
    if n == 0:
        return b""
    out = bytearray()
    neg, a = n < 0, abs(n)
    while a:
        out.append(a & 0xFF)
        a >>= 8
    if out[-1] & 0x80:
        out.append(0x80 if neg else 0)
    elif neg:
        out[-1] |= 0x80
    return bytes(out)


def _true(data: bytes) -> bool:
    for i, b in enumerate(data):
        if b:
            return not (i == len(data) - 1 and b == 0x80)
    return False


def _checksig(sig: bytes, pubkey: bytes, tx: Tx, index: int, script: bytes, amount: int) -> bool:
    if not sig:
        return False
    if sig[-1] != SIGHASH_ALL:
        raise _Unmodelled
    try:
        return bool(
            coincurve.PublicKey(pubkey).verify(
                sig[:-1], bip143_sighash(tx, index, script, amount), hasher=None
            )
        )
    except (ValueError, TypeError):
        return False


def _check_locktime(n: int, tx: Tx, index: int) -> bool:
    if (tx.locktime < LOCKTIME_THRESHOLD) != (n < LOCKTIME_THRESHOLD):
        return False
    return n <= tx.locktime and tx.vin[index].sequence != SEQUENCE_FINAL


def _check_sequence(n: int, tx: Tx, index: int) -> bool:
    seq = tx.vin[index].sequence
    if tx.version < 2 or seq & SEQUENCE_DISABLE_FLAG:
        return False
    mask = SEQUENCE_TYPE_FLAG | SEQUENCE_MASK
    n_masked, seq_masked = n & mask, seq & mask
    if (n_masked < SEQUENCE_TYPE_FLAG) != (seq_masked < SEQUENCE_TYPE_FLAG):
        return False
    return n_masked <= seq_masked


def witness_v0_error(tx: Tx, index: int, script: bytes, stack_items: list[bytes], amount: int) -> str | None:
    try:
        _run(tx, index, script, list(stack_items), amount)
    except _Fail as fail:
        return fail.text
    except (_Unmodelled, IndexError):
        return None
    return None


def _run(tx: Tx, index: int, script: bytes, stack: list[bytes], amount: int) -> None:
    try:
        ops = iter_ops(script)
    except ValueError as exc:
        raise _Unmodelled from exc
    conds: list[bool] = []

    def pop() -> bytes:
        if not stack:
            raise _Fail("stack")
        return stack.pop()

    def top() -> bytes:
        if not stack:
            raise _Fail("stack")
        return stack[-1]

    for op, data in ops:
        executing = all(conds)
        if op in (0x63, 0x64):  # OP_IF, OP_NOTIF
            value = False
            if executing:
                value = _true(pop()) == (op == 0x63)
            conds.append(value)
            continue
        if op == 0x67:  # OP_ELSE
            if not conds:
                raise _Fail("unbalanced")
            conds[-1] = not conds[-1]
            continue
        if op == 0x68:  # OP_ENDIF
            if not conds:
                raise _Fail("unbalanced")
            conds.pop()
            continue
        if not executing:
            continue
        if data is not None and op <= OP_PUSHDATA4:
            stack.append(data)
        elif op == OP_1NEGATE or OP_1 <= op <= OP_16:
            stack.append(_enc(-1 if op == OP_1NEGATE else op - OP_1 + 1))
        elif op == 0x69:  # OP_VERIFY
            if not _true(pop()):
                raise _Fail("verify")
        elif op == 0x6A:
            raise _Fail("op_return")
        elif op == 0x75:  # OP_DROP
            pop()
        elif op == 0x76:  # OP_DUP
            stack.append(top())
        elif op == 0x7C:  # OP_SWAP
            a, b = pop(), pop()
            stack.extend([a, b])
        elif op == 0x82:  # OP_SIZE
            stack.append(_enc(len(top())))
        elif op in (0x87, 0x88):  # OP_EQUAL, OP_EQUALVERIFY
            equal = pop() == pop()
            if op == 0x88:
                if not equal:
                    raise _Fail("equalverify")
            else:
                stack.append(b"\x01" if equal else b"")
        elif op == 0xA8:
            stack.append(hashlib.sha256(pop()).digest())
        elif op == 0xA9:
            stack.append(hashlib.new("ripemd160", hashlib.sha256(pop()).digest()).digest())
        elif op in (0xAC, 0xAD):  # OP_CHECKSIG, OP_CHECKSIGVERIFY
            pubkey, sig = pop(), pop()
            ok = _checksig(sig, pubkey, tx, index, script, amount)
            if op == 0xAD:
                if not ok:
                    raise _Fail("checksigverify")
            else:
                stack.append(b"\x01" if ok else b"")
        elif op in (0xB1, 0xB2):  # OP_CHECKLOCKTIMEVERIFY, OP_CHECKSEQUENCEVERIFY
            n = _num(top(), 5)
            if n < 0:
                raise _Fail("negative_locktime")
            if op == 0xB1 and not _check_locktime(n, tx, index):
                raise _Fail("locktime")
            if op == 0xB2 and not n & SEQUENCE_DISABLE_FLAG and not _check_sequence(n, tx, index):
                raise _Fail("locktime")
        else:
            raise _Unmodelled
    if conds:
        raise _Fail("unbalanced")
    if len(stack) != 1:
        raise _Fail("cleanstack")
    if not _true(stack[-1]):
        raise _Fail("eval_false")
