"""The P2WSH HTLC script: build it, encode its address, and read its terms back from a script.

    OP_SIZE 32 OP_EQUALVERIFY OP_SHA256 <hashlock> OP_EQUAL
    OP_IF <claim pubkey>
    OP_ELSE <height> OP_CHECKLOCKTIMEVERIFY OP_DROP <refund pubkey>
    OP_ENDIF OP_CHECKSIG

The size check pins the preimage to 32 bytes, so the same secret fits the EVM contract's bytes32 and a
longer push cannot satisfy one chain and not the other. SHA-256 is the hash the EVM leg uses.

The timelock is always an absolute block height. A time-based CLTV is compared with the median time of the
past 11 blocks, which trails wall-clock time by about an hour, so a refund built "at" its deadline would be
rejected as non-final for that hour while the counterparty may still claim.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bitcoinlib.encoding import addr_bech32_to_pubkeyhash, pubkeyhash_to_addr_bech32

OP_0 = 0x00
OP_PUSHDATA1 = 0x4C
OP_1NEGATE = 0x4F
OP_1 = 0x51
OP_16 = 0x60
OP_IF = 0x63
OP_ELSE = 0x67
OP_ENDIF = 0x68
OP_DROP = 0x75
OP_SIZE = 0x82
OP_EQUAL = 0x87
OP_EQUALVERIFY = 0x88
OP_SHA256 = 0xA8
OP_CHECKSIG = 0xAC
OP_CHECKLOCKTIMEVERIFY = 0xB1

PREIMAGE_SIZE = 32
LOCKTIME_THRESHOLD = 500_000_000  # nLockTime values from here on are unix times, which we never use


class HtlcScriptError(ValueError):
    pass


def push(data: bytes) -> bytes:
    if len(data) < OP_PUSHDATA1:
        return bytes([len(data)]) + data
    if len(data) <= 0xFF:
        return bytes([OP_PUSHDATA1, len(data)]) + data
    raise HtlcScriptError("pushes over 255 bytes never occur in an HTLC script")


def script_num(n: int) -> bytes:
    """Minimal CScriptNum push of a non-negative integer, as Bitcoin Core's `CScript() << n` writes it."""
    if n == 0:
        return bytes([OP_0])
    if 1 <= n <= 16:
        return bytes([OP_1 + n - 1])
    body = bytearray()
    while n:
        body.append(n & 0xFF)
        n >>= 8
    if body[-1] & 0x80:
        body.append(0)
    return push(bytes(body))


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(frozen=True, slots=True)
class Htlc:
    hashlock: bytes  # sha256(preimage)
    claim_pubkey: bytes  # compressed, 33 bytes
    refund_pubkey: bytes  # compressed, 33 bytes
    locktime: int  # absolute block height

    def __post_init__(self) -> None:
        if len(self.hashlock) != 32:
            raise HtlcScriptError("the hashlock must be a 32-byte SHA-256 digest")
        for name, key in (("claim", self.claim_pubkey), ("refund", self.refund_pubkey)):
            if len(key) != 33 or key[0] not in (2, 3):
                raise HtlcScriptError(f"the {name} key must be a 33-byte compressed public key")
        if not 0 < self.locktime < LOCKTIME_THRESHOLD:
            raise HtlcScriptError(
                f"timelock {self.locktime} is not a block height (1..{LOCKTIME_THRESHOLD - 1}); "
                "time-based refunds lag by the median-time-past and are refused"
            )

    @property
    def witness_script(self) -> bytes:
        return b"".join(
            (
                bytes([OP_SIZE]),
                push(bytes([PREIMAGE_SIZE])),
                bytes([OP_EQUALVERIFY, OP_SHA256]),
                push(self.hashlock),
                bytes([OP_EQUAL, OP_IF]),
                push(self.claim_pubkey),
                bytes([OP_ELSE]),
                script_num(self.locktime),
                bytes([OP_CHECKLOCKTIMEVERIFY, OP_DROP]),
                push(self.refund_pubkey),
                bytes([OP_ENDIF, OP_CHECKSIG]),
            )
        )

    @property
    def script_pubkey(self) -> bytes:
        return p2wsh_script_pubkey(self.witness_script)

    def address(self, hrp: str) -> str:
        return segwit_address(self.script_pubkey, hrp)


def p2wsh_script_pubkey(witness_script: bytes) -> bytes:
    return bytes([OP_0, 32]) + sha256(witness_script)


def p2wpkh_script_pubkey(pubkey_hash: bytes) -> bytes:
    return bytes([OP_0, 20]) + pubkey_hash


def segwit_address(script_pubkey: bytes, hrp: str) -> str:
    """Bech32 address of a v0 witness program (P2WPKH or P2WSH)."""
    if (
        script_pubkey[0] != OP_0
        or script_pubkey[1] != len(script_pubkey) - 2
        or len(script_pubkey) not in (22, 34)
    ):
        raise HtlcScriptError("only v0 witness programs (P2WPKH, P2WSH) have bech32 addresses here")
    return str(pubkeyhash_to_addr_bech32(script_pubkey[2:], prefix=hrp, witver=0))


def address_script_pubkey(address: str, hrp: str) -> bytes:
    """scriptPubKey of a v0 bech32 address; refuses addresses of another network."""
    prefix = address.lower().rsplit("1", 1)[0]
    if prefix != hrp:
        raise HtlcScriptError(f"address {address} is not for this network (expected prefix {hrp!r})")
    try:
        spk = bytes(addr_bech32_to_pubkeyhash(address, prefix=hrp, include_witver=True))
    except Exception as exc:
        raise HtlcScriptError(f"address {address} is not a valid bech32 address: {exc}") from None
    if spk[0] != OP_0:
        raise HtlcScriptError(f"address {address} is not a v0 witness address")
    return spk


def _read_push(script: bytes, pos: int) -> tuple[bytes, int]:
    if pos >= len(script):
        raise HtlcScriptError("script ends inside a push")
    op = script[pos]
    if 0 < op < OP_PUSHDATA1:
        end = pos + 1 + op
        start = pos + 1
    elif op == OP_PUSHDATA1 and pos + 1 < len(script):
        start = pos + 2
        end = start + script[pos + 1]
    else:
        raise HtlcScriptError(f"expected a data push at byte {pos}")
    if end > len(script):
        raise HtlcScriptError("script ends inside a push")
    return script[start:end], end


def _read_num(script: bytes, pos: int) -> tuple[int, int]:
    op = script[pos] if pos < len(script) else -1
    if OP_1 <= op <= OP_16:
        return op - OP_1 + 1, pos + 1
    data, end = _read_push(script, pos)
    if not data or data[-1] & 0x80 or len(data) > 5:
        raise HtlcScriptError("the timelock is not a positive script number")
    n = int.from_bytes(data, "little")
    if script_num(n) != script[pos:end]:
        raise HtlcScriptError("the timelock is not minimally encoded")
    return n, end


def parse_htlc(script: bytes) -> Htlc:
    """Terms of an HTLC witness script; raises unless the script is exactly the template above."""

    def expect(pos: int, *ops: int) -> int:
        if script[pos : pos + len(ops)] != bytes(ops):
            raise HtlcScriptError(f"not an HTLC script: unexpected opcode at byte {pos}")
        return pos + len(ops)

    pos = expect(0, OP_SIZE, 1, PREIMAGE_SIZE, OP_EQUALVERIFY, OP_SHA256)
    hashlock, pos = _read_push(script, pos)
    pos = expect(pos, OP_EQUAL, OP_IF)
    claim_pubkey, pos = _read_push(script, pos)
    pos = expect(pos, OP_ELSE)
    locktime, pos = _read_num(script, pos)
    pos = expect(pos, OP_CHECKLOCKTIMEVERIFY, OP_DROP)
    refund_pubkey, pos = _read_push(script, pos)
    pos = expect(pos, OP_ENDIF, OP_CHECKSIG)
    if pos != len(script):
        raise HtlcScriptError("not an HTLC script: trailing bytes")
    htlc = Htlc(hashlock, claim_pubkey, refund_pubkey, locktime)
    if htlc.witness_script != script:
        raise HtlcScriptError("not an HTLC script: non-canonical encoding")
    return htlc
