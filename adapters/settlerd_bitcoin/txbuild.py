"""Segwit transactions: serialisation, BIP143 signature hashes, and the HTLC claim and refund spends."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace

from .htlc import Htlc, push
from .keys import SigningKey

SIGHASH_ALL = 0x01
RBF_SEQUENCE = 0xFFFFFFFD  # signals BIP125 replaceability and still lets CLTV (nLockTime) apply
TX_VERSION = 2
DUMMY_SIGNATURE = (
    b"\x30" + bytes(71) + bytes([SIGHASH_ALL])
)  # largest DER signature: sizes a tx before signing
REFUND_SELECTOR = bytes(32)  # 32 bytes that pass the size check and hash to anything but the hashlock


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def varbytes(data: bytes) -> bytes:
    return varint(len(data)) + data


@dataclass(frozen=True, slots=True)
class OutPoint:
    txid: str  # display (big-endian) hex, as RPC shows it
    vout: int

    def serialize(self) -> bytes:
        return bytes.fromhex(self.txid)[::-1] + self.vout.to_bytes(4, "little")

    def __str__(self) -> str:
        return f"{self.txid}:{self.vout}"

    @classmethod
    def parse(cls, text: str) -> OutPoint:
        txid, _, vout = text.partition(":")
        if len(txid) != 64 or not vout.isdigit():
            raise ValueError(f"{text!r} is not an outpoint 'txid:vout'")
        return cls(txid.lower(), int(vout))


@dataclass(frozen=True, slots=True)
class TxIn:
    prevout: OutPoint
    sequence: int = RBF_SEQUENCE
    witness: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class TxOut:
    value: int
    script_pubkey: bytes

    def serialize(self) -> bytes:
        return self.value.to_bytes(8, "little") + varbytes(self.script_pubkey)


@dataclass(frozen=True, slots=True)
class Tx:
    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]
    locktime: int = 0
    version: int = TX_VERSION

    def serialize(self, witness: bool = True) -> bytes:
        has_witness = witness and any(i.witness for i in self.inputs)
        parts = [self.version.to_bytes(4, "little")]
        if has_witness:
            parts.append(b"\x00\x01")
        parts.append(varint(len(self.inputs)))
        for i in self.inputs:
            parts += [i.prevout.serialize(), b"\x00", i.sequence.to_bytes(4, "little")]
        parts.append(varint(len(self.outputs)))
        parts += [o.serialize() for o in self.outputs]
        if has_witness:
            for i in self.inputs:
                parts.append(varint(len(i.witness)))
                parts += [varbytes(item) for item in i.witness]
        parts.append(self.locktime.to_bytes(4, "little"))
        return b"".join(parts)

    @property
    def txid(self) -> str:
        return sha256d(self.serialize(witness=False))[::-1].hex()

    @property
    def vsize(self) -> int:
        base = len(self.serialize(witness=False))
        total = len(self.serialize(witness=True))
        return math.ceil((base * 3 + total) / 4)

    def with_witness(self, index: int, witness: tuple[bytes, ...]) -> Tx:
        inputs = list(self.inputs)
        inputs[index] = replace(inputs[index], witness=witness)
        return replace(self, inputs=tuple(inputs))


def bip143_sighash(tx: Tx, index: int, script_code: bytes, amount: int, sighash: int = SIGHASH_ALL) -> bytes:
    """Signature hash of a segwit v0 input (BIP143), SIGHASH_ALL."""
    prevouts = sha256d(b"".join(i.prevout.serialize() for i in tx.inputs))
    sequences = sha256d(b"".join(i.sequence.to_bytes(4, "little") for i in tx.inputs))
    outputs = sha256d(b"".join(o.serialize() for o in tx.outputs))
    txin = tx.inputs[index]
    preimage = b"".join(
        (
            tx.version.to_bytes(4, "little"),
            prevouts,
            sequences,
            txin.prevout.serialize(),
            varbytes(script_code),
            amount.to_bytes(8, "little"),
            txin.sequence.to_bytes(4, "little"),
            outputs,
            tx.locktime.to_bytes(4, "little"),
            sighash.to_bytes(4, "little"),
        )
    )
    return sha256d(preimage)


def p2wpkh_script_code(pubkey_hash: bytes) -> bytes:
    return bytes([0x76, 0xA9]) + push(pubkey_hash) + bytes([0x88, 0xAC])


@dataclass(frozen=True, slots=True)
class Spendable:
    """A coin the wallet can sign for: a P2WPKH output and its key."""

    outpoint: OutPoint
    value: int
    key: SigningKey = field(repr=False)


def sign_p2wpkh_inputs(tx: Tx, coins: list[Spendable]) -> Tx:
    """Sign every input of ``tx``; ``coins[i]`` is the coin spent by input ``i``."""
    for index, coin in enumerate(coins):
        digest = bip143_sighash(tx, index, p2wpkh_script_code(coin.key.pubkey_hash), coin.value)
        signature = coin.key.sign_digest(digest) + bytes([SIGHASH_ALL])
        tx = tx.with_witness(index, (signature, coin.key.pubkey))
    return tx


def htlc_spend(
    htlc: Htlc,
    outpoint: OutPoint,
    amount: int,
    key: SigningKey,
    destination: bytes,
    fee_rate: float,
    selector: bytes,
    locktime: int,
) -> tuple[Tx, int]:
    """Spend an HTLC output to ``destination``; ``selector`` is the preimage (claim) or REFUND_SELECTOR.

    Returns the signed transaction and its fee. Raises ValueError when the fee would eat the output.
    """
    script = htlc.witness_script
    unsigned = Tx((TxIn(outpoint),), (TxOut(amount, destination),), locktime=locktime)
    fee = math.ceil(htlc_spend_vsize(htlc, selector, destination) * fee_rate)
    value = amount - fee
    if value < P2WPKH_DUST:
        raise ValueError(
            f"HTLC {outpoint} holds {amount} sat; a fee of {fee} sat at {fee_rate} sat/vB leaves dust. "
            "Lower the fee floor or wait for cheaper blocks."
        )
    tx = replace(unsigned, outputs=(TxOut(value, destination),))
    digest = bip143_sighash(tx, 0, script, amount)
    signature = key.sign_digest(digest) + bytes([SIGHASH_ALL])
    return tx.with_witness(0, (signature, selector, script)), fee


def htlc_spend_vsize(htlc: Htlc, selector: bytes, destination: bytes) -> int:
    """The virtual size ``htlc_spend`` pays for: the largest signature, so the rate is never underpaid."""
    tx = Tx((TxIn(OutPoint("00" * 32, 0)),), (TxOut(0, destination),))
    return tx.with_witness(0, (DUMMY_SIGNATURE, selector, htlc.witness_script)).vsize


P2WPKH_DUST = 294  # Bitcoin Core's dust threshold for a P2WPKH output at the default 3 sat/vB dust relay fee
P2WSH_DUST = 330  # same for a P2WSH output


def parse_tx(raw: bytes) -> Tx:
    """Parse a serialised transaction (with or without witness)."""
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(raw):
            raise ValueError("transaction ends early")
        out = raw[pos : pos + n]
        pos += n
        return out

    def read_varint() -> int:
        first = take(1)[0]
        if first < 0xFD:
            return first
        return int.from_bytes(take({0xFD: 2, 0xFE: 4, 0xFF: 8}[first]), "little")

    version = int.from_bytes(take(4), "little")
    segwit = raw[pos : pos + 2] == b"\x00\x01"
    if segwit:
        pos += 2
    inputs = []
    for _ in range(read_varint()):
        txid = take(32)[::-1].hex()
        vout = int.from_bytes(take(4), "little")
        take(read_varint())  # scriptSig: empty for the segwit spends built here
        sequence = int.from_bytes(take(4), "little")
        inputs.append(TxIn(OutPoint(txid, vout), sequence))
    outputs = []
    for _ in range(read_varint()):
        value = int.from_bytes(take(8), "little")
        outputs.append(TxOut(value, take(read_varint())))
    if segwit:
        for index in range(len(inputs)):
            items = tuple(take(read_varint()) for _ in range(read_varint()))
            inputs[index] = replace(inputs[index], witness=items)
    locktime = int.from_bytes(take(4), "little")
    if pos != len(raw):
        raise ValueError("trailing bytes after the transaction")
    return Tx(tuple(inputs), tuple(outputs), locktime, version)
