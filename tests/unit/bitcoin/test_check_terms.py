"""Terms from a counterparty's document are checked before they are stored or watched."""

from typing import Any

import coincurve
import pytest
from settlerd_bitcoin import factory

from settlerd.adapters import HtlcTerms

KEY = coincurve.PrivateKey(b"\x01" * 32).public_key.format(compressed=True).hex()
OTHER = coincurve.PrivateKey(b"\x02" * 32).public_key.format(compressed=True).hex()


def adapter() -> Any:
    settings = {"rpc_url": "http://127.0.0.1:1", "network": "regtest", "seed": "11" * 32}
    return factory(settings, store=object())  # type: ignore[arg-type]  # no store use in these checks


def terms(**changes: Any) -> HtlcTerms:
    base = {"chain": "bitcoin", "asset": "BTC", "amount": 10_000, "hashlock": b"\x00" * 32,
            "recipient": KEY, "sender": OTHER, "timelock": 800_000}  # fmt: skip
    return HtlcTerms(**{**base, **changes})


def test_well_formed_terms_pass() -> None:
    assert adapter().check_terms(terms()) == []


def test_malformed_parties_assets_and_timelocks_are_named() -> None:
    a = adapter()
    assert a.check_terms(terms(recipient=KEY.upper()))[0].startswith("recipient: must be a compressed")
    assert a.check_terms(terms(sender="02" + "ff" * 32)) == ["sender: is not a valid secp256k1 public key"]
    assert a.check_terms(terms(asset="ETH")) == ["asset: 'ETH' is not BTC"]
    assert a.check_terms(terms(timelock=500_000_000))[0].startswith(
        "timelock: 500000000 is not a block height"
    )


def test_amounts_outside_dust_to_max_money_are_refused() -> None:
    a = adapter()
    for amount in (330, 2_100_000_000_000_000):
        assert a.check_terms(terms(amount=amount)) == [], amount
    for amount in (0, 1, 329, 2_100_000_000_000_001, 2**256):
        problems = a.check_terms(terms(amount=amount))
        assert len(problems) == 1 and problems[0].startswith(f"amount: {amount} sat is outside 330"), problems


def test_the_one_spelling_of_btc() -> None:
    a = adapter()
    assert {a.canonical_asset(s) for s in ("BTC", "btc", "Btc")} == {"BTC"}
    for other in ("ETH", " BTC", "BTC2", ""):
        with pytest.raises(ValueError, match="carries only BTC"):
            a.canonical_asset(other)
