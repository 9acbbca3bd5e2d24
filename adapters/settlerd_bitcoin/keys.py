"""BIP32 keys from the one configured seed: the wallet's addresses and a fresh key pair per swap.

Paths (``coin`` is 0 on mainnet, 1 on test networks; ``account`` is a setting, default 0):

- wallet receive:  m/84'/coin'/account'/0/i   (BIP84, P2WPKH)
- wallet change:   m/84'/coin'/account'/1/i
- swap keys:       m/8383'/coin'/account'/j'
                   with j = the first 31 bits of sha256("settlerd/swap-key" || hashlock)

A swap's key index comes from its hashlock, which both desks know from the offer onwards, so the key
that signs a claim or a refund is found again after a restart without storing anything. Swap keys sit
on their own fully hardened branch: one leaked swap key reveals nothing about any other key.
Neither the seed nor any private key is ever logged; reprs show public data only.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import coincurve

HARDENED = 0x80000000
WALLET_PURPOSE = 84
SWAP_PURPOSE = 8383  # not a registered BIP43 purpose: a branch only settlerd derives from
RECEIVE, CHANGE = 0, 1
_SWAP_INDEX_TAG = b"settlerd/swap-key"


class SigningKey:
    """A private key with the public data a caller needs; its repr never shows the secret."""

    __slots__ = ("_key", "path", "pubkey")

    def __init__(self, secret: bytes, path: str) -> None:
        self._key = coincurve.PrivateKey(secret)
        self.path = path
        self.pubkey: bytes = self._key.public_key.format(compressed=True)

    @property
    def pubkey_hash(self) -> bytes:
        return hashlib.new("ripemd160", hashlib.sha256(self.pubkey).digest()).digest()

    def sign_digest(self, digest: bytes) -> bytes:
        """DER ECDSA signature of a 32-byte sighash; libsecp256k1 always returns the low-S form."""
        return bytes(self._key.sign(digest, hasher=None))

    def __repr__(self) -> str:
        return f"SigningKey(path={self.path!r}, pubkey={self.pubkey.hex()})"

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("signing keys are not serialisable")


class _Node:
    __slots__ = ("chain_code", "secret")

    def __init__(self, secret: bytes, chain_code: bytes) -> None:
        self.secret = secret
        self.chain_code = chain_code

    def child(self, index: int) -> _Node:
        if index >= HARDENED:
            data = b"\x00" + self.secret + index.to_bytes(4, "big")
        else:
            pub = coincurve.PrivateKey(self.secret).public_key.format(compressed=True)
            data = pub + index.to_bytes(4, "big")
        digest = hmac.new(self.chain_code, data, hashlib.sha512).digest()
        # (IL + k) mod n; coincurve refuses the one-in-2^127 invalid results, as BIP32 says to.
        secret = coincurve.PrivateKey(self.secret).add(digest[:32]).secret
        return _Node(secret, digest[32:])

    def __repr__(self) -> str:
        return "_Node(<secret>)"


def parse_path(path: str) -> list[int]:
    parts = path.split("/")
    if parts[0] != "m":
        raise ValueError(f"BIP32 path {path!r} must start with 'm'")
    out = []
    for part in parts[1:]:
        hardened = part.endswith("'") or part.endswith("h")
        n = int(part.rstrip("'h"))
        if not 0 <= n < HARDENED:
            raise ValueError(f"BIP32 path {path!r}: index {n} out of range")
        out.append(n + HARDENED if hardened else n)
    return out


def swap_key_index(hashlock: bytes) -> int:
    return int.from_bytes(hashlib.sha256(_SWAP_INDEX_TAG + hashlock).digest()[:4], "big") & (HARDENED - 1)


class KeyChain:
    """Every key the adapter signs with, derived on demand from one seed."""

    def __init__(self, seed: bytes, coin_type: int, account: int = 0) -> None:
        if not 16 <= len(seed) <= 64:
            raise ValueError("the HD seed must be 16 to 64 bytes (BIP32); check the adapter's seed setting")
        digest = hmac.new(b"Bitcoin seed", seed, hashlib.sha512).digest()
        self._master = _Node(digest[:32], digest[32:])
        self.coin_type = coin_type
        self.account = account
        self._branches: dict[str, _Node] = {}

    def derive(self, path: str) -> SigningKey:
        node = self._master
        for index in parse_path(path):
            node = node.child(index)
        return SigningKey(node.secret, path)

    def _branch(self, prefix: str) -> _Node:
        node = self._branches.get(prefix)
        if node is None:
            node = self._master
            for index in parse_path(prefix):
                node = node.child(index)
            self._branches[prefix] = node
        return node

    def wallet_key(self, chain: int, index: int) -> SigningKey:
        prefix = f"m/{WALLET_PURPOSE}'/{self.coin_type}'/{self.account}'/{chain}"
        return SigningKey(self._branch(prefix).child(index).secret, f"{prefix}/{index}")

    def swap_key(self, hashlock: bytes) -> SigningKey:
        prefix = f"m/{SWAP_PURPOSE}'/{self.coin_type}'/{self.account}'"
        index = swap_key_index(hashlock)
        return SigningKey(self._branch(prefix).child(index | HARDENED).secret, f"{prefix}/{index}'")

    def __repr__(self) -> str:
        return f"KeyChain(coin_type={self.coin_type}, account={self.account}, seed=<hidden>)"

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("the key chain is not serialisable")
