"""Block building for regtest: BIP34 coinbase, witness commitment (BIP141), regtest proof of work."""

from __future__ import annotations

import hashlib
import os
import time

from .codec import (
    NULL_TXID,
    Block,
    BlockHeader,
    OutPoint,
    Tx,
    TxIn,
    TxOut,
    merkle_root,
    sha256d,
)
from .script import push_int

BLOCK_VERSION = 0x20000000  # BIP9 top bits, no signalling
REGTEST_BITS = 0x207FFFFF
REGTEST_HALVING_INTERVAL = 150
INITIAL_SUBSIDY = 50 * 100_000_000
WITNESS_COMMITMENT_HEADER = bytes.fromhex("aa21a9ed")
WITNESS_RESERVED_VALUE = bytes(32)
MAX_BLOCK_WEIGHT = 4_000_000
COINBASE_WEIGHT_RESERVE = 4_000  # room for the coinbase, as Core's block assembler keeps


def subsidy(height: int) -> int:
    halvings = height // REGTEST_HALVING_INTERVAL
    return 0 if halvings >= 64 else INITIAL_SUBSIDY >> halvings


def _target(bits: int) -> int:
    return (bits & 0xFFFFFF) << (8 * ((bits >> 24) - 3))


REGTEST_TARGET = _target(REGTEST_BITS)


def witness_commitment_script(txs: list[Tx]) -> bytes:
    wtxids = [NULL_TXID] + [t.wtxid for t in txs]
    commitment = sha256d(merkle_root(wtxids) + WITNESS_RESERVED_VALUE)
    return b"\x6a\x24" + WITNESS_COMMITMENT_HEADER + commitment


def build_block(
    prev: bytes, height: int, prev_mtp: int, txs: list[Tx], fees: int, payout_spk: bytes
) -> Block:
    # A random extra nonce keeps blocks on competing branches distinct even when height, payout and
    # timestamp coincide (a reorg test mines the replacement branch within the same second).
    script_sig = push_int(height) + bytes([4]) + os.urandom(4)
    coinbase = Tx(
        version=2,
        vin=[TxIn(OutPoint(NULL_TXID, 0xFFFFFFFF), script_sig, 0xFFFFFFFF, [WITNESS_RESERVED_VALUE])],
        vout=[
            TxOut(subsidy(height) + fees, payout_spk),
            TxOut(0, witness_commitment_script(txs)),
        ],
        locktime=0,
    )
    all_txs = [coinbase, *txs]
    header = BlockHeader(
        version=BLOCK_VERSION,
        prev=prev,
        merkle_root=merkle_root([t.txid for t in all_txs]),
        time=max(int(time.time()), prev_mtp + 1),
        bits=REGTEST_BITS,
        nonce=0,
    )
    prefix = header.serialize()[:76]
    nonce = 0
    while True:
        raw = prefix + nonce.to_bytes(4, "little")
        h = hashlib.sha256(hashlib.sha256(raw).digest()).digest()
        if int.from_bytes(h, "little") <= REGTEST_TARGET:
            break
        nonce += 1
    header.nonce = nonce
    return Block(header, all_txs)
