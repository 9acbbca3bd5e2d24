"""HTLC claims and refunds run through Bitcoin Core's own script interpreter (libbitcoinkernel)."""

from __future__ import annotations

import pbk
import pytest
from settlerd_bitcoin.htlc import Htlc, sha256
from settlerd_bitcoin.keys import KeyChain
from settlerd_bitcoin.txbuild import REFUND_SELECTOR, OutPoint, htlc_spend

# Every consensus rule that applies to segwit v0; TAPROOT would also need all spent outputs passed in.
FLAGS = pbk.ScriptVerificationFlags.ALL & ~pbk.ScriptVerificationFlags.TAPROOT
AMOUNT = 100_000
LOCKTIME = 300
PREIMAGE = bytes(range(32))
FUNDING = OutPoint("11" * 32, 0)

keys = KeyChain(bytes(range(32)), coin_type=1)
claimer = keys.swap_key(sha256(PREIMAGE))
refunder = keys.wallet_key(0, 0)
htlc = Htlc(sha256(PREIMAGE), claimer.pubkey, refunder.pubkey, LOCKTIME)
destination = bytes([0, 20]) + bytes(20)


def verify(raw: bytes, script_pubkey: bytes = htlc.script_pubkey) -> bool:
    spk = pbk.ScriptPubkey(script_pubkey)
    tx = pbk.Transaction(raw)
    try:
        return bool(spk.verify(AMOUNT, tx, None, 0, FLAGS))
    except pbk.ScriptVerifyException:
        return False


def spend(key: object, selector: bytes, locktime: int = 0) -> bytes:
    tx, _ = htlc_spend(htlc, FUNDING, AMOUNT, key, destination, 2.0, selector, locktime)  # type: ignore[arg-type]
    return tx.serialize()


def test_claim_with_the_preimage_is_valid() -> None:
    assert verify(spend(claimer, PREIMAGE))


def test_refund_after_the_timelock_is_valid() -> None:
    assert verify(spend(refunder, REFUND_SELECTOR, LOCKTIME))


@pytest.mark.parametrize("locktime", [0, LOCKTIME - 1])
def test_refund_before_the_timelock_fails_cltv(locktime: int) -> None:
    assert not verify(spend(refunder, REFUND_SELECTOR, locktime))


def test_wrong_preimage_cannot_claim() -> None:
    assert not verify(spend(claimer, bytes(31) + b"\x01"))


def test_33_byte_preimage_cannot_claim_even_if_it_hashes_right() -> None:
    long_secret = PREIMAGE + b"\x00"
    long_htlc = Htlc(sha256(long_secret), claimer.pubkey, refunder.pubkey, LOCKTIME)
    tx, _ = htlc_spend(long_htlc, FUNDING, AMOUNT, claimer, destination, 2.0, long_secret, 0)
    assert not verify(tx.serialize(), long_htlc.script_pubkey)


def test_refund_key_cannot_take_the_claim_path() -> None:
    assert not verify(spend(refunder, PREIMAGE))


def test_claim_key_cannot_refund() -> None:
    assert not verify(spend(claimer, REFUND_SELECTOR, LOCKTIME))
