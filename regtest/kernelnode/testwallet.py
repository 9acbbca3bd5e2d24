"""Signing helpers for tests and dev scripts (no wallet RPCs needed, so they work against bitcoind too).

A Key with its P2WPKH address, BIP143 signatures for P2WPKH and P2WSH inputs, and a Faucet that pays
an address from the node's mature coinbase outputs mined to a known key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import coincurve

from .codec import OutPoint, Tx, TxIn, TxOut, hex_hash
from .script import script_for_address, segwit_address
from .sighash import SIGHASH_ALL, bip143_sighash

COINBASE_MATURITY = 100
DEFAULT_FEERATE = 2  # sat/vB, above bitcoind's 1 sat/vB relay minimum
P2WPKH_INPUT_VBYTES = 68  # outpoint, sequence, empty scriptSig and the discounted witness
DUST_LIMIT = 546  # keep change above bitcoind's dust threshold or drop it into the fee

Rpc = Callable[..., Awaitable[Any]]


def hash160(data: bytes) -> bytes:
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest()


class Key:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self._key = coincurve.PrivateKey(secret)
        self.pubkey = self._key.public_key.format(compressed=True)

    @classmethod
    def from_seed(cls, seed: str) -> Key:
        return cls(hashlib.sha256(seed.encode()).digest())

    @property
    def p2wpkh_spk(self) -> bytes:
        return b"\x00\x14" + hash160(self.pubkey)

    @property
    def address(self) -> str:
        return segwit_address(0, hash160(self.pubkey))

    def sign(self, digest: bytes, sighash: int = SIGHASH_ALL) -> bytes:
        """DER, low-S (coincurve normalises), with the sighash byte appended."""
        return self._key.sign(digest, hasher=None) + bytes([sighash])


def p2wsh_spk(witness_script: bytes) -> bytes:
    return b"\x00\x20" + hashlib.sha256(witness_script).digest()


def p2pkh_script_code(pubkey: bytes) -> bytes:
    return b"\x76\xa9\x14" + hash160(pubkey) + b"\x88\xac"


def sign_p2wpkh(tx: Tx, index: int, key: Key, amount: int) -> None:
    digest = bip143_sighash(tx, index, p2pkh_script_code(key.pubkey), amount)
    tx.vin[index].witness = [key.sign(digest), key.pubkey]
    _touch(tx)


def sign_p2wsh(tx: Tx, index: int, key: Key, witness_script: bytes, amount: int) -> bytes:
    """The signature; the caller assembles the witness stack around it."""
    return key.sign(bip143_sighash(tx, index, witness_script, amount))


def _touch(tx: Tx) -> None:
    """Drop cached serialisations after the transaction changed."""
    tx._raw = b""
    tx._stripped = b""


def set_witness(tx: Tx, index: int, stack: list[bytes]) -> None:
    tx.vin[index].witness = stack
    _touch(tx)


def sats(btc: Any) -> int:
    return int(Decimal(str(btc)) * 100_000_000)


class Faucet:
    """Spends mature coinbase outputs paid to `key` (mine to `key.address` first)."""

    def __init__(self, rpc: Rpc, key: Key, first_height: int = 1) -> None:
        """``first_height``: the first block whose coinbase may pay ``key`` (a long chain mined by others
        need not be scanned)."""
        self.rpc = rpc
        self.key = key
        self._next_height = first_height
        self._used: set[OutPoint] = set()

    async def _coinbase_coin(self) -> tuple[OutPoint, int]:
        tip = await self.rpc("getblockcount")
        while self._next_height <= tip - COINBASE_MATURITY + 1:
            height = self._next_height
            self._next_height += 1
            block = await self.rpc("getblock", await self.rpc("getblockhash", height), 2)
            cb = block["tx"][0]
            out = cb["vout"][0]
            if out["scriptPubKey"]["hex"] != self.key.p2wpkh_spk.hex():
                continue
            outpoint = OutPoint(hex_hash(cb["txid"]), 0)
            if outpoint in self._used or await self.rpc("gettxout", cb["txid"], 0, True) is None:
                continue
            self._used.add(outpoint)
            return outpoint, sats(out["value"])
        raise RuntimeError(
            f"no mature coinbase output for {self.key.address}: "
            f"mine at least {COINBASE_MATURITY + 1} blocks to it"
        )

    async def fund(
        self, address_or_spk: str | bytes, value: int, feerate: int = DEFAULT_FEERATE
    ) -> tuple[str, int]:
        """Pay `value` sats to the address/scriptPubKey; returns (txid, vout) of the new output."""
        spk = address_or_spk if isinstance(address_or_spk, bytes) else script_for_address(address_or_spk)
        if spk is None:
            raise ValueError(f"not a regtest address: {address_or_spk!r}")
        outpoint, amount = await self._coinbase_coin()
        tx = Tx(2, [TxIn(outpoint, b"", 0xFFFFFFFD)], [TxOut(value, spk)], 0)
        change_vbytes = 31
        vsize = 10 + P2WPKH_INPUT_VBYTES + sum(9 + len(o.script_pubkey) for o in tx.vout) + change_vbytes
        change = amount - value - vsize * feerate
        if change < 0:
            raise ValueError(f"{value} sats is more than one coinbase output ({amount}) can pay")
        if change >= DUST_LIMIT:
            tx.vout.append(TxOut(change, self.key.p2wpkh_spk))
        sign_p2wpkh(tx, 0, self.key, amount)
        txid = await self.rpc("sendrawtransaction", tx.serialize().hex())
        return txid, 0
