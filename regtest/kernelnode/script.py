"""Scripts: regtest addresses (bech32/bech32m, base58check), output types, asm text as bitcoind prints it."""

from __future__ import annotations

import hashlib

from .codec import DecodeError

BECH32_HRP = "bcrt"
P2PKH_VERSION = 0x6F
P2SH_VERSION = 0xC4

OP_0 = 0x00
OP_PUSHDATA1 = 0x4C
OP_PUSHDATA2 = 0x4D
OP_PUSHDATA4 = 0x4E
OP_1NEGATE = 0x4F
OP_1 = 0x51
OP_16 = 0x60
OP_RETURN = 0x6A
OP_DUP = 0x76
OP_EQUAL = 0x87
OP_EQUALVERIFY = 0x88
OP_HASH160 = 0xA9
OP_CHECKSIG = 0xAC
OP_CHECKMULTISIG = 0xAE

_OP_NAMES = {
    0x61: "OP_NOP", 0x62: "OP_VER", 0x63: "OP_IF", 0x64: "OP_NOTIF", 0x65: "OP_VERIF", 0x66: "OP_VERNOTIF",
    0x67: "OP_ELSE", 0x68: "OP_ENDIF", 0x69: "OP_VERIFY", 0x6A: "OP_RETURN", 0x6B: "OP_TOALTSTACK",
    0x6C: "OP_FROMALTSTACK", 0x6D: "OP_2DROP", 0x6E: "OP_2DUP", 0x6F: "OP_3DUP", 0x70: "OP_2OVER",
    0x71: "OP_2ROT", 0x72: "OP_2SWAP", 0x73: "OP_IFDUP", 0x74: "OP_DEPTH", 0x75: "OP_DROP", 0x76: "OP_DUP",
    0x77: "OP_NIP", 0x78: "OP_OVER", 0x79: "OP_PICK", 0x7A: "OP_ROLL", 0x7B: "OP_ROT", 0x7C: "OP_SWAP",
    0x7D: "OP_TUCK", 0x7E: "OP_CAT", 0x7F: "OP_SUBSTR", 0x80: "OP_LEFT", 0x81: "OP_RIGHT", 0x82: "OP_SIZE",
    0x83: "OP_INVERT", 0x84: "OP_AND", 0x85: "OP_OR", 0x86: "OP_XOR", 0x87: "OP_EQUAL",
    0x88: "OP_EQUALVERIFY", 0x89: "OP_RESERVED1", 0x8A: "OP_RESERVED2", 0x8B: "OP_1ADD", 0x8C: "OP_1SUB",
    0x8D: "OP_2MUL", 0x8E: "OP_2DIV", 0x8F: "OP_NEGATE", 0x90: "OP_ABS", 0x91: "OP_NOT",
    0x92: "OP_0NOTEQUAL", 0x93: "OP_ADD", 0x94: "OP_SUB", 0x95: "OP_MUL", 0x96: "OP_DIV", 0x97: "OP_MOD",
    0x98: "OP_LSHIFT", 0x99: "OP_RSHIFT", 0x9A: "OP_BOOLAND", 0x9B: "OP_BOOLOR", 0x9C: "OP_NUMEQUAL",
    0x9D: "OP_NUMEQUALVERIFY", 0x9E: "OP_NUMNOTEQUAL", 0x9F: "OP_LESSTHAN", 0xA0: "OP_GREATERTHAN",
    0xA1: "OP_LESSTHANOREQUAL", 0xA2: "OP_GREATERTHANOREQUAL", 0xA3: "OP_MIN", 0xA4: "OP_MAX",
    0xA5: "OP_WITHIN", 0xA6: "OP_RIPEMD160", 0xA7: "OP_SHA1", 0xA8: "OP_SHA256", 0xA9: "OP_HASH160",
    0xAA: "OP_HASH256", 0xAB: "OP_CODESEPARATOR", 0xAC: "OP_CHECKSIG", 0xAD: "OP_CHECKSIGVERIFY",
    0xAE: "OP_CHECKMULTISIG", 0xAF: "OP_CHECKMULTISIGVERIFY", 0xB0: "OP_NOP1",
    0xB1: "OP_CHECKLOCKTIMEVERIFY", 0xB2: "OP_CHECKSEQUENCEVERIFY", 0xB3: "OP_NOP4", 0xB4: "OP_NOP5",
    0xB5: "OP_NOP6", 0xB6: "OP_NOP7", 0xB7: "OP_NOP8", 0xB8: "OP_NOP9", 0xB9: "OP_NOP10",
    0xBA: "OP_CHECKSIGADD", 0x50: "OP_RESERVED",
}  # fmt: skip

_SIGHASH_NAMES = {
    0x01: "ALL", 0x02: "NONE", 0x03: "SINGLE",
    0x81: "ALL|ANYONECANPAY", 0x82: "NONE|ANYONECANPAY", 0x83: "SINGLE|ANYONECANPAY",
}  # fmt: skip


def iter_ops(script: bytes) -> list[tuple[int, bytes | None]]:
    """(opcode, pushed data or None); raises DecodeError on a truncated push."""
    ops: list[tuple[int, bytes | None]] = []
    i = 0
    while i < len(script):
        op = script[i]
        i += 1
        if op <= OP_PUSHDATA4:
            if op < OP_PUSHDATA1:
                n = op
            else:
                width = {OP_PUSHDATA1: 1, OP_PUSHDATA2: 2, OP_PUSHDATA4: 4}[op]
                if i + width > len(script):
                    raise DecodeError("truncated push")
                n = int.from_bytes(script[i : i + width], "little")
                i += width
            if i + n > len(script):
                raise DecodeError("truncated push")
            ops.append((op, script[i : i + n]))
            i += n
        else:
            ops.append((op, None))
    return ops


def _script_num(data: bytes) -> int:
    if not data:
        return 0
    value = int.from_bytes(data, "little")
    if data[-1] & 0x80:
        return -(value & ~(0x80 << (8 * (len(data) - 1))))
    return value


def encode_script_num(n: int) -> bytes:
    """Minimal CScriptNum encoding of a non-negative number."""
    out = bytearray()
    while n:
        out.append(n & 0xFF)
        n >>= 8
    if out and out[-1] & 0x80:
        out.append(0)
    return bytes(out)


def push_int(n: int) -> bytes:
    """`CScript() << n`: OP_0, OP_1..OP_16, or a minimal data push."""
    if n == 0:
        return bytes([OP_0])
    if 1 <= n <= 16:
        return bytes([OP_1 + n - 1])
    data = encode_script_num(n)
    return bytes([len(data)]) + data


def _is_der_signature(sig: bytes) -> bool:
    if len(sig) < 9 or len(sig) > 73 or sig[0] != 0x30 or sig[1] != len(sig) - 3:
        return False
    len_r = sig[3]
    if 5 + len_r >= len(sig):
        return False
    len_s = sig[5 + len_r]
    return len_r + len_s + 7 == len(sig)


def to_asm(script: bytes, sighash_decode: bool = False) -> str:
    try:
        ops = iter_ops(script)
    except DecodeError:
        return "[error]"
    words = []
    for op, data in ops:
        if data is not None:
            if len(data) <= 4:
                words.append(str(_script_num(data)))
            elif sighash_decode and _is_der_signature(data) and data[-1] in _SIGHASH_NAMES:
                words.append(data[:-1].hex() + f"[{_SIGHASH_NAMES[data[-1]]}]")
            else:
                words.append(data.hex())
        elif op == OP_1NEGATE:
            words.append("-1")
        elif OP_1 <= op <= OP_16:
            words.append(str(op - OP_1 + 1))
        else:
            words.append(_OP_NAMES.get(op, "OP_UNKNOWN"))
    return " ".join(words)


def witness_program(spk: bytes) -> tuple[int, bytes] | None:
    if 4 <= len(spk) <= 42 and (spk[0] == OP_0 or OP_1 <= spk[0] <= OP_16) and spk[1] + 2 == len(spk):
        version = 0 if spk[0] == OP_0 else spk[0] - OP_1 + 1
        return version, spk[2:]
    return None


def script_type(spk: bytes) -> str:
    wp = witness_program(spk)
    if wp is not None:
        version, program = wp
        if version == 0 and len(program) == 20:
            return "witness_v0_keyhash"
        if version == 0 and len(program) == 32:
            return "witness_v0_scripthash"
        if version == 1 and len(program) == 32:
            return "witness_v1_taproot"
        if version == 1 and program == bytes.fromhex("4e73"):
            return "anchor"
        return "nonstandard" if version == 0 else "witness_unknown"
    if (
        len(spk) == 25
        and spk[:3] == bytes([OP_DUP, OP_HASH160, 20])
        and spk[23:] == bytes([OP_EQUALVERIFY, OP_CHECKSIG])
    ):
        return "pubkeyhash"
    if len(spk) == 23 and spk[:2] == bytes([OP_HASH160, 20]) and spk[22] == OP_EQUAL:
        return "scripthash"
    if spk and spk[0] == OP_RETURN:
        return "nulldata"
    if len(spk) in (35, 67) and spk[0] == len(spk) - 2 and spk[-1] == OP_CHECKSIG:
        return "pubkey"
    if spk and spk[-1] == OP_CHECKMULTISIG:
        return "multisig"
    return "nonstandard"


# --- bech32 / bech32m (BIP173, BIP350) ---
_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_CONST = 1
_BECH32M_CONST = 0x2BC830A3


def _polymod(values: list[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convertbits(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int] | None:
    acc = bits = 0
    out = []
    maxv = (1 << tobits) - 1
    for value in data:
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad and bits:
        out.append((acc << (tobits - bits)) & maxv)
    elif not pad and (bits >= frombits or (acc << (tobits - bits)) & maxv):
        return None
    return out


def segwit_address(version: int, program: bytes) -> str:
    data = [version] + (_convertbits(program, 8, 5, True) or [])
    const = _BECH32_CONST if version == 0 else _BECH32M_CONST
    polymod = _polymod(_hrp_expand(BECH32_HRP) + data + [0] * 6) ^ const
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return BECH32_HRP + "1" + "".join(_CHARSET[d] for d in data + checksum)


def _decode_segwit(addr: str) -> bytes | None:
    addr = addr.lower()
    hrp, sep, rest = addr.rpartition("1")
    if not sep or hrp != BECH32_HRP or len(rest) < 7 or any(c not in _CHARSET for c in rest):
        return None
    data = [_CHARSET.index(c) for c in rest]
    const = _polymod(_hrp_expand(hrp) + data)
    version = data[0]
    if const != (_BECH32_CONST if version == 0 else _BECH32M_CONST) or version > 16:
        return None
    program = _convertbits(data[1:-6], 5, 8, False)
    if program is None or not 2 <= len(program) <= 40 or (version == 0 and len(program) not in (20, 32)):
        return None
    return bytes([OP_0 if version == 0 else OP_1 + version - 1, len(program)]) + bytes(program)


# --- base58check ---
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58check_encode(payload: bytes) -> str:
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, rem = divmod(n, 58)
        out = _B58[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _b58check_decode(s: str) -> bytes | None:
    if not s or any(c not in _B58 for c in s):
        return None
    n = 0
    for c in s:
        n = n * 58 + _B58.index(c)
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    data = b"\0" * (len(s) - len(s.lstrip("1"))) + body
    if len(data) < 5:
        return None
    payload, check = data[:-4], data[-4:]
    if hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != check:
        return None
    return payload


def address_of(spk: bytes) -> str | None:
    wp = witness_program(spk)
    if wp is not None and script_type(spk) != "nonstandard":
        return segwit_address(*wp)
    kind = script_type(spk)
    if kind == "pubkeyhash":
        return _b58check_encode(bytes([P2PKH_VERSION]) + spk[3:23])
    if kind == "scripthash":
        return _b58check_encode(bytes([P2SH_VERSION]) + spk[2:22])
    return None


def script_for_address(addr: str) -> bytes | None:
    """scriptPubKey for a regtest address, or None when it is not one."""
    spk = _decode_segwit(addr)
    if spk is not None:
        return spk
    payload = _b58check_decode(addr)
    if payload is None or len(payload) != 21:
        return None
    if payload[0] == P2PKH_VERSION:
        return bytes([OP_DUP, OP_HASH160, 20]) + payload[1:] + bytes([OP_EQUALVERIFY, OP_CHECKSIG])
    if payload[0] == P2SH_VERSION:
        return bytes([OP_HASH160, 20]) + payload[1:] + bytes([OP_EQUAL])
    return None
