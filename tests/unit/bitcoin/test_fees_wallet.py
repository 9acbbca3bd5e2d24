"""Fee policy, the bump schedule and coin selection: pure functions, no node."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from settlerd_bitcoin import BitcoinSettings
from settlerd_bitcoin.fees import (
    BUMP_WINDOW_BLOCKS,
    INCREMENTAL_RELAY_FEE,
    RACE_CLIMB_BLOCKS,
    URGENT_BLOCKS,
    FeePolicy,
    affordable_rate,
    blocks_waited,
    claim_blocks_left,
    replacement_rate,
    target_rate,
)
from settlerd_bitcoin.htlc import Htlc, sha256
from settlerd_bitcoin.keys import RECEIVE, KeyChain
from settlerd_bitcoin.txbuild import (
    P2WPKH_DUST,
    REFUND_SELECTOR,
    OutPoint,
    htlc_spend,
    htlc_spend_vsize,
    parse_tx,
)
from settlerd_bitcoin.wallet import (
    COINBASE_MATURITY,
    P2WSH_OUTPUT_VB,
    InsufficientFunds,
    Utxo,
    Wallet,
    select_coins,
)


def test_estimate_is_converted_and_clamped() -> None:
    policy = FeePolicy(floor=2.0, cap=50.0)
    assert policy.from_estimate({"feerate": Decimal("0.00010000"), "blocks": 6}) == 10.0
    assert policy.from_estimate({"feerate": Decimal("0.00001000")}) == 2.0
    assert policy.from_estimate({"feerate": Decimal("0.01")}) == 50.0


@pytest.mark.parametrize(
    "result", [{"errors": ["Insufficient data or no feerate found"], "blocks": 0}, None, {}]
)
def test_missing_estimate_falls_back_to_the_floor(result: object) -> None:
    assert FeePolicy(floor=3.0, cap=50.0).from_estimate(result) == 3.0


def test_floor_above_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="fee floor"):
        FeePolicy(floor=10.0, cap=5.0)


def test_claim_schedule_is_flat_then_rises_to_the_cap_before_its_deadline() -> None:
    rates = [target_rate(2.0, 100.0, 0, left) for left in range(60, -3, -1)]
    assert rates[0] == 2.0 == target_rate(2.0, 100.0, 0, BUMP_WINDOW_BLOCKS + 1)
    assert all(a <= b for a, b in itertools.pairwise(rates))
    assert target_rate(2.0, 100.0, 0, URGENT_BLOCKS) == 100.0
    assert target_rate(2.0, 100.0, 0, 0) == 100.0
    assert 2.0 < target_rate(2.0, 100.0, 0, 20) < 100.0


def test_a_refund_races_from_its_first_block_and_reaches_the_cap_within_the_climb() -> None:
    # The counterparty's claim path never closes: there is no quiet period, only the wait counts.
    rates = [target_rate(4.0, 50.0, waited, None) for waited in range(RACE_CLIMB_BLOCKS + 3)]
    assert rates[0] == 4.0
    assert all(a < b for a, b in itertools.pairwise(rates[: RACE_CLIMB_BLOCKS + 1]))
    assert rates[RACE_CLIMB_BLOCKS:] == [50.0] * 3
    # Far from its deadline, a claim that waits climbs the same way: the estimate it started from was wrong.
    assert target_rate(4.0, 50.0, 2, 500) == rates[2]
    assert target_rate(4.0, 50.0, 2, 10) > rates[2]


def test_only_blocks_after_the_first_broadcast_are_waited() -> None:
    # Signed and sent at the node's tip 1,100 while the scanner still read block 1,000 after an outage.
    assert blocks_waited(1_000, 1_100) == blocks_waited(1_100, 1_100) == 0
    assert target_rate(4.0, 200.0, blocks_waited(1_100, 1_100), None) == 4.0
    assert blocks_waited(1_101, 1_100) == 1
    assert target_rate(4.0, 200.0, 1, None) < 10.0


def test_race_start_is_above_the_estimate_within_floor_and_cap() -> None:
    policy = FeePolicy(floor=2.0, cap=50.0)
    assert policy.race_start(2.0) == 4.0
    assert policy.race_start(0.5) == 2.0
    assert policy.race_start(40.0) == 50.0


def test_replacement_must_outbid_by_the_incremental_fee_and_respect_the_cap() -> None:
    assert replacement_rate(5.0, 5.0, 100.0) is None
    assert replacement_rate(5.0, 5.5, 100.0) == 6.0
    assert replacement_rate(5.0, 30.0, 100.0) == 30.0
    assert replacement_rate(99.5, 200.0, 100.0) is None
    assert replacement_rate(100.0, 200.0, 100.0) is None


PREIMAGE = bytes(range(32))
SPEND_KEY = KeyChain(bytes(range(32)), coin_type=1).swap_key(sha256(PREIMAGE))
HTLC = Htlc(sha256(PREIMAGE), SPEND_KEY.pubkey, SPEND_KEY.pubkey, 300)
TO_WALLET = bytes([0, 20]) + bytes(20)


def test_a_replacement_raises_the_absolute_fee_by_the_incremental_relay_fee() -> None:
    # BIP125 rules 3 and 4: more absolute fee than the original, by at least the incremental rate * size.
    for selector in (PREIMAGE, REFUND_SELECTOR):
        rate = 2.3
        for target in (2.4, 3.7, 9.9, 50.0):
            new = replacement_rate(rate, target, 50.0)
            if new is None:
                continue
            old_tx, old_fee = htlc_spend(
                HTLC, OutPoint("11" * 32, 0), 100_000, SPEND_KEY, TO_WALLET, rate, selector, 0
            )
            new_tx, new_fee = htlc_spend(
                HTLC, OutPoint("11" * 32, 0), 100_000, SPEND_KEY, TO_WALLET, new, selector, 0
            )
            assert new_fee - old_fee >= INCREMENTAL_RELAY_FEE * new_tx.vsize
            assert new_fee / new_tx.vsize > old_fee / old_tx.vsize
            rate = new


@pytest.mark.parametrize("amount", [700, 3_000, 10_007, 1_000_000])
def test_the_affordable_rate_keeps_the_output_above_dust(amount: int) -> None:
    vsize = htlc_spend_vsize(HTLC, PREIMAGE, TO_WALLET)
    highest = affordable_rate(amount, vsize, P2WPKH_DUST)
    tx, fee = htlc_spend(HTLC, OutPoint("11" * 32, 0), amount, SPEND_KEY, TO_WALLET, highest, PREIMAGE, 0)
    assert tx.outputs[0].value >= P2WPKH_DUST and fee <= amount - P2WPKH_DUST
    with pytest.raises(ValueError, match="dust"):
        htlc_spend(HTLC, OutPoint("11" * 32, 0), amount, SPEND_KEY, TO_WALLET, highest + 0.2, PREIMAGE, 0)


def test_blocks_left() -> None:
    # Refund locktime 120: the refund can be mined in block 121, so a claim at tip 100 has 20 blocks.
    assert claim_blocks_left(100, 120) == 19


def utxo(value: int, n: int, height: int = 10, coinbase: bool = False) -> Utxo:
    return Utxo(OutPoint(f"{n:064x}", 0), value, RECEIVE, n, height, coinbase)


def test_single_smallest_sufficient_coin_is_preferred() -> None:
    coins = [utxo(1_000_000, 1), utxo(60_000, 2), utxo(200_000, 3)]
    sel = select_coins(coins, 50_000, 2.0, P2WSH_OUTPUT_VB)
    assert [c.index for c in sel.coins] == [2]
    assert sel.change == 60_000 - 50_000 - sel.fee
    assert sel.fee == (11 + 68 + 43 + 31) * 2


def test_largest_first_when_no_single_coin_covers() -> None:
    coins = [utxo(30_000, 1), utxo(40_000, 2), utxo(20_000, 3)]
    sel = select_coins(coins, 65_000, 1.0, P2WSH_OUTPUT_VB)
    assert [c.index for c in sel.coins] == [2, 1]
    assert sum(c.value for c in sel.coins) == 65_000 + sel.fee + sel.change


def test_dust_change_goes_to_the_fee() -> None:
    fee_no_change = 11 + 68 + 43
    sel = select_coins([utxo(50_000 + fee_no_change + P2WPKH_DUST - 1, 1)], 50_000, 1.0, P2WSH_OUTPUT_VB)
    assert sel.change == 0
    assert sel.fee == fee_no_change + P2WPKH_DUST - 1


def test_insufficient_funds_says_what_to_do() -> None:
    with pytest.raises(InsufficientFunds, match="send funds"):
        select_coins([utxo(1_000, 1)], 50_000, 1.0, P2WSH_OUTPUT_VB)


def test_immature_coinbase_and_reserved_coins_are_not_spendable() -> None:
    wallet = Wallet(KeyChain(bytes(32), 1))
    coins = [utxo(5_000_000_000, 1, height=10, coinbase=True), utxo(10_000, 2), utxo(20_000, 3, height=0)]
    wallet.utxos = {str(u.outpoint): u for u in coins}
    tip = 10 + COINBASE_MATURITY - 2
    assert [u.index for u in wallet.spendable(tip)] == [2]
    assert {u.index for u in wallet.spendable(tip + 1)} == {1, 2}
    wallet.reserved.add(str(coins[1].outpoint))
    assert [u.index for u in wallet.spendable(tip + 1)] == [1]


def test_funding_pays_the_htlc_with_change_and_signals_rbf() -> None:
    keys = KeyChain(bytes(32), 1)
    wallet = Wallet(keys)
    spk = wallet.script(RECEIVE, 0)
    coin = utxo(100_000, 0)
    wallet.utxos = {str(coin.outpoint): coin}
    htlc_spk = bytes([0, 32]) + sha256(b"htlc")
    tx, sel = wallet.build_funding(htlc_spk, 40_000, 5.0, tip=200)
    assert tx.outputs[0].script_pubkey == htlc_spk and tx.outputs[0].value == 40_000
    assert tx.outputs[1].value == sel.change and tx.outputs[1].script_pubkey != spk
    assert all(i.sequence == 0xFFFFFFFD for i in tx.inputs)
    assert tx.vsize * 5.0 <= sel.fee  # the size estimate never underpays the rate
    assert parse_tx(tx.serialize()) == tx
    assert wallet.spendable(200) == []


def test_settings_refuse_unknown_keys_and_hide_the_seed() -> None:
    base = {"rpc_url": "http://127.0.0.1:18443", "seed": "00" * 32, "name": "btc", "finality_depth": 2}
    settings = BitcoinSettings.from_mapping({**base, "fee_floor": 3, "network": "signet"})
    assert (settings.name, settings.fees.floor, settings.network.hrp, settings.finality_depth) == (
        "btc",
        3.0,
        "tb",
        2,
    )
    assert "00" * 32 not in repr(settings)
    with pytest.raises(ValueError, match="fee_flor"):
        BitcoinSettings.from_mapping({**base, "fee_flor": 3})
    with pytest.raises(ValueError, match="unknown Bitcoin network"):
        BitcoinSettings.from_mapping({**base, "network": "main"})
