"""HTLC script layout, bech32 addresses and BIP32 key derivation."""

from __future__ import annotations

import pytest
from bitcoinlib.keys import HDKey
from settlerd_bitcoin.htlc import (
    Htlc,
    HtlcScriptError,
    address_script_pubkey,
    parse_htlc,
    script_num,
    segwit_address,
    sha256,
)
from settlerd_bitcoin.keys import KeyChain, swap_key_index

CLAIM = bytes.fromhex("02" + "11" * 32)
REFUND = bytes.fromhex("03" + "22" * 32)
HASHLOCK = sha256(b"\x07" * 32)


def test_script_byte_layout() -> None:
    script = Htlc(HASHLOCK, CLAIM, REFUND, 100).witness_script
    # The layout of the notes: 115 bytes with compressed keys and a one-byte height push.
    assert len(script) == 115
    expected = (
        bytes.fromhex("82012088a820")
        + HASHLOCK
        + bytes.fromhex("876321")
        + CLAIM
        + bytes.fromhex("670164b17521")
        + REFUND
        + bytes.fromhex("68ac")
    )
    assert script == expected


@pytest.mark.parametrize(
    ("height", "length"),
    [(16, 114), (127, 115), (128, 116), (32_767, 116), (32_768, 117), (900_000, 117)],
)
def test_script_grows_only_with_the_height_push(height: int, length: int) -> None:
    assert len(Htlc(HASHLOCK, CLAIM, REFUND, height).witness_script) == length


@pytest.mark.parametrize(
    ("n", "encoded"),
    [(1, "51"), (16, "60"), (17, "0111"), (127, "017f"), (128, "028000"), (255, "02ff00"), (256, "020001")],
)
def test_script_numbers_are_minimal(n: int, encoded: str) -> None:
    assert script_num(n).hex() == encoded


@pytest.mark.parametrize("height", [1, 16, 17, 128, 840_000, 499_999_999])
def test_parse_returns_the_terms(height: int) -> None:
    htlc = Htlc(HASHLOCK, CLAIM, REFUND, height)
    assert parse_htlc(htlc.witness_script) == htlc


def test_parse_refuses_other_scripts() -> None:
    script = Htlc(HASHLOCK, CLAIM, REFUND, 500).witness_script
    with pytest.raises(HtlcScriptError):
        parse_htlc(script + b"\x75")
    with pytest.raises(HtlcScriptError):
        parse_htlc(script.replace(bytes.fromhex("820120"), bytes.fromhex("820121")))
    with pytest.raises(HtlcScriptError):
        parse_htlc(script[:-1])


def test_timestamps_are_refused_as_timelocks() -> None:
    with pytest.raises(HtlcScriptError, match="median-time-past"):
        Htlc(HASHLOCK, CLAIM, REFUND, 1_700_000_000)


@pytest.mark.parametrize(
    ("address", "hrp", "spk"),
    [
        # BIP173 test vectors
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "bc", "0014751e76e8199196d454941c45d1b3a323f1433bd6"),
        (
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
            "tb",
            "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
        ),
        # Bitcoin Core regtest address of the same P2WPKH program
        (
            "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
            "bcrt",
            "0014751e76e8199196d454941c45d1b3a323f1433bd6",
        ),
    ],
)
def test_address_vectors(address: str, hrp: str, spk: str) -> None:
    assert segwit_address(bytes.fromhex(spk), hrp) == address
    assert address_script_pubkey(address, hrp).hex() == spk


def test_address_of_another_network_is_refused() -> None:
    with pytest.raises(HtlcScriptError, match="not for this network"):
        address_script_pubkey("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "bcrt")


def test_htlc_address_is_p2wsh_of_the_script() -> None:
    htlc = Htlc(HASHLOCK, CLAIM, REFUND, 500)
    address = htlc.address("bcrt")
    assert address.startswith("bcrt1q") and len(address) == 64
    assert address_script_pubkey(address, "bcrt") == bytes([0, 32]) + sha256(htlc.witness_script)


SEED = bytes.fromhex("000102030405060708090a0b0c0d0e0f")


@pytest.mark.parametrize("path", ["m/0'", "m/0'/1", "m/0'/1/2'/2/1000000000", "m/84'/1'/0'/0/7"])
def test_derivation_matches_an_independent_bip32_implementation(path: str) -> None:
    ours = KeyChain(SEED, coin_type=1).derive(path)
    theirs = HDKey.from_seed(SEED).subkey_for_path(path)
    assert ours.pubkey.hex() == theirs.public_hex


def test_wallet_and_swap_keys_are_deterministic_and_distinct() -> None:
    a, b = KeyChain(SEED, 1), KeyChain(SEED, 1)
    assert a.wallet_key(0, 3).pubkey == b.wallet_key(0, 3).pubkey
    assert a.wallet_key(0, 3).pubkey == a.derive("m/84'/1'/0'/0/3").pubkey
    assert a.swap_key(HASHLOCK).pubkey == b.swap_key(HASHLOCK).pubkey
    index = swap_key_index(HASHLOCK)
    assert a.swap_key(HASHLOCK).pubkey == a.derive(f"m/8383'/1'/0'/{index}'").pubkey
    assert a.swap_key(HASHLOCK).pubkey != a.swap_key(sha256(b"other")).pubkey
    assert KeyChain(SEED, 0).wallet_key(0, 3).pubkey != a.wallet_key(0, 3).pubkey
    assert KeyChain(SEED, 1, account=1).swap_key(HASHLOCK).pubkey != a.swap_key(HASHLOCK).pubkey


def test_reprs_hide_secrets() -> None:
    chain = KeyChain(SEED, 1)
    key = chain.swap_key(HASHLOCK)
    secret_hex = key._key.secret.hex()
    assert SEED.hex() not in repr(chain)
    assert secret_hex not in repr(key)
    assert key.pubkey.hex() in repr(key)
