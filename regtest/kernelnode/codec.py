"""Bitcoin transaction and block serialisation (BIP141 witness format), hashes and weights."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

WITNESS_SCALE_FACTOR = 4
SEQUENCE_FINAL = 0xFFFFFFFF
NULL_TXID = bytes(32)
COINBASE_VOUT = 0xFFFFFFFF


class DecodeError(ValueError):
    """Bytes that are not a well-formed transaction or block."""


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def hash_hex(h: bytes) -> str:
    """Bitcoin shows hashes byte-reversed."""
    return h[::-1].hex()


def hex_hash(s: str) -> bytes:
    if len(s) != 64:
        raise ValueError(f"must be of length 64 (not {len(s)}, for '{s}')")
    return bytes.fromhex(s)[::-1]


def ser_varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + struct.pack("<I", n)
    return b"\xff" + struct.pack("<Q", n)


def ser_bytes(b: bytes) -> bytes:
    return ser_varint(len(b)) + b


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DecodeError("unexpected end of data")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def i32(self) -> int:
        return int(struct.unpack("<i", self.take(4))[0])

    def i64(self) -> int:
        return int(struct.unpack("<q", self.take(8))[0])

    def varint(self) -> int:
        first = self.u8()
        if first < 0xFD:
            return first
        if first == 0xFD:
            return int(struct.unpack("<H", self.take(2))[0])
        if first == 0xFE:
            return int(struct.unpack("<I", self.take(4))[0])
        return int(struct.unpack("<Q", self.take(8))[0])

    def var_bytes(self) -> bytes:
        return self.take(self.varint())

    def at_end(self) -> bool:
        return self.pos == len(self.data)


@dataclass(frozen=True)
class OutPoint:
    txid: bytes  # internal byte order
    vout: int


@dataclass
class TxIn:
    prevout: OutPoint
    script_sig: bytes
    sequence: int
    witness: list[bytes] = field(default_factory=list)


@dataclass
class TxOut:
    value: int
    script_pubkey: bytes


@dataclass
class Tx:
    version: int
    vin: list[TxIn]
    vout: list[TxOut]
    locktime: int
    _raw: bytes = b""
    _stripped: bytes = b""

    @property
    def has_witness(self) -> bool:
        return any(i.witness for i in self.vin)

    def serialize(self, with_witness: bool = True) -> bytes:
        if with_witness and self._raw:
            return self._raw
        if not with_witness and self._stripped:
            return self._stripped
        segwit = with_witness and self.has_witness
        out = [struct.pack("<i", self.version)]
        if segwit:
            out.append(b"\x00\x01")
        out.append(ser_varint(len(self.vin)))
        for i in self.vin:
            out.append(i.prevout.txid + struct.pack("<I", i.prevout.vout))
            out.append(ser_bytes(i.script_sig) + struct.pack("<I", i.sequence))
        out.append(ser_varint(len(self.vout)))
        for o in self.vout:
            out.append(struct.pack("<q", o.value) + ser_bytes(o.script_pubkey))
        if segwit:
            for i in self.vin:
                out.append(ser_varint(len(i.witness)) + b"".join(ser_bytes(w) for w in i.witness))
        out.append(struct.pack("<I", self.locktime))
        data = b"".join(out)
        if with_witness:
            self._raw = data
        else:
            self._stripped = data
        return data

    @property
    def txid(self) -> bytes:
        return sha256d(self.serialize(with_witness=False))

    @property
    def wtxid(self) -> bytes:
        return sha256d(self.serialize())

    @property
    def size(self) -> int:
        return len(self.serialize())

    @property
    def weight(self) -> int:
        stripped = len(self.serialize(with_witness=False))
        return stripped * (WITNESS_SCALE_FACTOR - 1) + self.size

    @property
    def vsize(self) -> int:
        return (self.weight + WITNESS_SCALE_FACTOR - 1) // WITNESS_SCALE_FACTOR

    def is_coinbase(self) -> bool:
        return (
            len(self.vin) == 1
            and self.vin[0].prevout.txid == NULL_TXID
            and self.vin[0].prevout.vout == COINBASE_VOUT
        )


def read_tx(r: Reader) -> Tx:
    start = r.pos
    version = r.i32()
    segwit = False
    n_in = r.varint()
    if n_in == 0:
        flag = r.u8()
        if flag != 1:
            raise DecodeError("bad segwit flag")
        segwit = True
        n_in = r.varint()
    vin = []
    for _ in range(n_in):
        txid = r.take(32)
        vout = r.u32()
        script = r.var_bytes()
        vin.append(TxIn(OutPoint(txid, vout), script, r.u32()))
    vout_list = [TxOut(r.i64(), r.var_bytes()) for _ in range(r.varint())]
    if segwit:
        for i in vin:
            i.witness = [r.var_bytes() for _ in range(r.varint())]
        if not any(i.witness for i in vin):
            raise DecodeError("superfluous witness record")
    locktime = r.u32()
    tx = Tx(version, vin, vout_list, locktime)
    tx._raw = r.data[start : r.pos]
    return tx


def parse_tx(data: bytes) -> Tx:
    r = Reader(data)
    tx = read_tx(r)
    if not r.at_end():
        raise DecodeError("trailing bytes after transaction")
    if not tx.vin:
        raise DecodeError("no inputs")
    return tx


@dataclass
class BlockHeader:
    version: int
    prev: bytes
    merkle_root: bytes
    time: int
    bits: int
    nonce: int

    def serialize(self) -> bytes:
        return (
            struct.pack("<i", self.version)
            + self.prev
            + self.merkle_root
            + struct.pack("<III", self.time, self.bits, self.nonce)
        )

    @property
    def hash(self) -> bytes:
        return sha256d(self.serialize())


@dataclass
class Block:
    header: BlockHeader
    txs: list[Tx]
    _raw: bytes = b""

    def serialize(self) -> bytes:
        if not self._raw:
            self._raw = (
                self.header.serialize()
                + ser_varint(len(self.txs))
                + b"".join(t.serialize() for t in self.txs)
            )
        return self._raw

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def size(self) -> int:
        return len(self.serialize())

    @property
    def stripped_size(self) -> int:
        return 80 + len(ser_varint(len(self.txs))) + sum(len(t.serialize(False)) for t in self.txs)

    @property
    def weight(self) -> int:
        return self.stripped_size * (WITNESS_SCALE_FACTOR - 1) + self.size


def parse_header(data: bytes) -> BlockHeader:
    r = Reader(data)
    version = r.i32()
    prev = r.take(32)
    merkle = r.take(32)
    t, bits, nonce = struct.unpack("<III", r.take(12))
    return BlockHeader(version, prev, merkle, t, bits, nonce)


def parse_block(data: bytes) -> Block:
    header = parse_header(data[:80])
    r = Reader(data)
    r.pos = 80
    txs = [read_tx(r) for _ in range(r.varint())]
    if not r.at_end():
        raise DecodeError("trailing bytes after block")
    return Block(header, txs, data)


def merkle_root(hashes: list[bytes]) -> bytes:
    if not hashes:
        return NULL_TXID
    layer = list(hashes)
    while len(layer) > 1:
        if len(layer) % 2:
            layer.append(layer[-1])
        layer = [sha256d(layer[i] + layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0]
