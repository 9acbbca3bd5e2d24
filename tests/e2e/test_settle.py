"""Two settlerd processes settle real swaps through the HTTP API on a regtest node and anvil.

Each test starts from the balances the session's earlier tests left and checks only what its own swap
moved; every swap must complete on both daemons.
"""

from __future__ import annotations

import pytest
from localnet import Daemon, Localnet, btc, erc20, eth

from .settlement import MAX_BTC_FEES_SATS, MAX_EVM_FEES_WEI, assert_paid, assert_settled, balances

BTC_AMOUNT = 10_000_000  # 0.1 BTC
ETH_AMOUNT = 10**18
TOKEN_AMOUNT = 60_000_000  # 60 units of a 6-decimals token


async def settle(net: Localnet, initiator: Daemon, participant: Daemon, swap_id: str) -> None:
    for daemon in (initiator, participant):
        await net.wait_status(daemon, swap_id, "completed")
    for daemon in (initiator, participant):
        await assert_settled(net, daemon, swap_id)


@pytest.mark.parametrize("bitcoin_side_initiates", [True, False], ids=["bitcoin-initiates", "evm-initiates"])
async def test_btc_for_eth_with_either_side_initiating(
    net: Localnet, desks: tuple[Daemon, Daemon], bitcoin_side_initiates: bool
) -> None:
    a, b = desks  # a gives BTC and gets ETH either way; only who makes the offer changes
    a0, b0 = await balances(net, a), await balances(net, b)

    if bitcoin_side_initiates:
        swap_id = await net.trade(a, b, give=btc(BTC_AMOUNT), get=eth(ETH_AMOUNT))
        await settle(net, a, b, swap_id)
    else:
        swap_id = await net.trade(b, a, give=eth(ETH_AMOUNT), get=btc(BTC_AMOUNT))
        await settle(net, b, a, swap_id)

    a1, b1 = await balances(net, a), await balances(net, b)
    assert_paid("a BTC", a0.btc, a1.btc, -BTC_AMOUNT, MAX_BTC_FEES_SATS)
    assert_paid("b BTC", b0.btc, b1.btc, BTC_AMOUNT, MAX_BTC_FEES_SATS)
    assert_paid("a ETH", a0.eth, a1.eth, ETH_AMOUNT, MAX_EVM_FEES_WEI)
    assert_paid("b ETH", b0.eth, b1.eth, -ETH_AMOUNT, MAX_EVM_FEES_WEI)


async def test_btc_for_an_erc20(net: Localnet, desks: tuple[Daemon, Daemon]) -> None:
    a, b = desks
    a0, b0 = await balances(net, a), await balances(net, b)

    swap_id = await net.trade(a, b, give=btc(BTC_AMOUNT), get=erc20(net.token, TOKEN_AMOUNT))
    await settle(net, a, b, swap_id)

    a1, b1 = await balances(net, a), await balances(net, b)
    assert_paid("a BTC", a0.btc, a1.btc, -BTC_AMOUNT, MAX_BTC_FEES_SATS)
    assert_paid("b BTC", b0.btc, b1.btc, BTC_AMOUNT, MAX_BTC_FEES_SATS)
    assert a1.token - a0.token == TOKEN_AMOUNT and b0.token - b1.token == TOKEN_AMOUNT, (a0, a1, b0, b1)
    # Only gas moved ETH: b's approve and lock, a's claim.
    assert_paid("a ETH", a0.eth, a1.eth, 0, MAX_EVM_FEES_WEI)
    assert_paid("b ETH", b0.eth, b1.eth, 0, MAX_EVM_FEES_WEI)
