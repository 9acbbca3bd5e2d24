"""EVM terms: the contract's amount range, and one spelling per asset (risk limits key on it)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from settlerd_evm import contract as c
from settlerd_evm.adapter import EvmAdapter, EvmSettings

from settlerd.adapters import HtlcTerms

KEY = "0x" + "11" * 32
ME, YOU = Account.from_key(KEY).address, Account.from_key("0x" + "22" * 32).address
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def adapter() -> EvmAdapter:
    settings = EvmSettings(rpc_url="http://127.0.0.1:1", contract="0x" + "00" * 20, private_key=KEY)
    return EvmAdapter(settings, None)  # type: ignore[arg-type]  # no store use in these checks


def terms(**changes: Any) -> HtlcTerms:
    base = {"chain": "evm", "asset": "ETH", "amount": 10**18, "hashlock": b"\x00" * 32,
            "recipient": ME, "sender": YOU, "timelock": 1_900_000_000}  # fmt: skip
    return HtlcTerms(**{**base, **changes})


def test_amounts_outside_the_contracts_range_are_refused() -> None:
    a = adapter()
    assert c.MAX_AMOUNT == 2**96 - 1
    for amount in (1, 2**96 - 1):
        assert a.check_terms(terms(amount=amount)) == [], amount
    for amount in (0, 2**96, 2**256):
        problems = a.check_terms(terms(amount=amount))
        assert len(problems) == 1 and problems[0].startswith(f"amount: {amount} is outside 1 to"), problems


def test_each_asset_has_one_spelling() -> None:
    a = adapter()
    assert {a.canonical_asset(s) for s in ("ETH", "eth", "Eth", "eTh")} == {"ETH"}
    assert {a.canonical_asset(s) for s in (TOKEN, TOKEN.lower(), "0x" + TOKEN[2:].upper())} == {TOKEN}
    bad_checksum = TOKEN[:-1] + "A"
    for other in ("0xdeadbeef", bad_checksum, "BTC", "", "0x" + "00" * 20):
        with pytest.raises(ValueError):
            a.canonical_asset(other)
