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
        self._spare: list[tuple[OutPoint, int]] = []  # found for a payment they could not cover alone

    async def _coinbase_coin(self) -> tuple[OutPoint, int]:
        if self._spare:
            return self._spare.pop()
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
        """Pay `value` sats to the address/scriptPubKey; returns (txid, vout) of the new output.

        As many coinbase outputs as it takes: regtest halves the subsidy every 150 blocks, so on a long
        chain one coinbase pays little. RuntimeError when the mature ones run out (mine more and call
        again: the ones found so far are kept for it)."""
        spk = address_or_spk if isinstance(address_or_spk, bytes) else script_for_address(address_or_spk)
        if spk is None:
            raise ValueError(f"not a regtest address: {address_or_spk!r}")
        coins: list[tuple[OutPoint, int]] = []
        change_vbytes = 31
        outputs_vbytes = 10 + 9 + len(spk) + change_vbytes

        def short() -> bool:
            fee = (outputs_vbytes + len(coins) * P2WPKH_INPUT_VBYTES) * feerate
            return sum(a for _, a in coins) < value + fee

        while short():
            try:
                coins.append(await self._coinbase_coin())
            except RuntimeError:
                self._spare.extend(coins)
                raise
        tx = Tx(2, [TxIn(o, b"", 0xFFFFFFFD) for o, _ in coins], [TxOut(value, spk)], 0)
        vsize = outputs_vbytes + len(coins) * P2WPKH_INPUT_VBYTES
        change = sum(a for _, a in coins) - value - vsize * feerate
        if change >= DUST_LIMIT:
            tx.vout.append(TxOut(change, self.key.p2wpkh_spk))
        for index, (_, amount) in enumerate(coins):
            sign_p2wpkh(tx, index, self.key, amount)
        txid = await self.rpc("sendrawtransaction", tx.serialize().hex())
        return txid, 0
