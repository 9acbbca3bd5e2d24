"""The block-time bounds behind height timelocks: exact Gamma quantiles, and the fewest blocks for a time."""

from __future__ import annotations

import math

import pytest
from settlerd_bitcoin import BitcoinSettings
from settlerd_bitcoin.blocktimes import (
    STEADY_SLACK,
    Arrivals,
    BlockTimes,
    gamma_cdf,
    gamma_quantiles,
    gamma_sf,
)


def test_one_block_is_exponential() -> None:
    low, high = gamma_quantiles(1.0, 1e-6)
    assert low == pytest.approx(-math.log1p(-1e-6), rel=1e-12)
    assert high == pytest.approx(-math.log(1e-6), rel=1e-12)


@pytest.mark.parametrize("blocks", [2, 6, 72, 144, 1_000, 20_000])
@pytest.mark.parametrize("p", [1e-3, 1e-6, 1e-9])
def test_quantiles_hit_the_tail_probability_on_both_sides(blocks: int, p: float) -> None:
    low, high = gamma_quantiles(float(blocks), p)
    assert low < blocks < high
    # Conservative by no more than rounding: the tails are p, not a loose bound on it.
    assert gamma_cdf(blocks, low) <= p
    assert gamma_cdf(blocks, low * (1 + 1e-9)) > p
    assert gamma_sf(blocks, high) <= p
    assert gamma_sf(blocks, high * (1 - 1e-9)) > p


def test_poisson_identity_for_whole_blocks() -> None:
    # P(Gamma(n) <= x) = P(Poisson(x) >= n): summed directly for a small case.
    n, x = 5, 2.5
    below = sum(math.exp(-x) * x**k / math.factorial(k) for k in range(n))
    assert gamma_cdf(n, x) == pytest.approx(1 - below, rel=1e-12)
    assert gamma_sf(n, x) == pytest.approx(below, rel=1e-12)


def test_a_days_blocks_spread_over_many_hours_at_one_in_a_million() -> None:
    times = BlockTimes(600.0)
    earliest, latest = times.bounds(144)
    assert 15 * 3600 < earliest < 16 * 3600
    assert 34 * 3600 < latest < 35 * 3600


def test_blocks_for_is_the_fewest_whose_earliest_bound_is_late_enough() -> None:
    times = BlockTimes(600.0)
    for seconds in (60.0, 3600.0, 12 * 3600.0, 7 * 86400.0):
        n = times.blocks_for(seconds)
        assert times.bounds(n)[0] >= seconds
        assert n == 1 or times.bounds(n - 1)[0] < seconds
    assert times.blocks_for(-5.0) == 1


def test_steady_arrivals_for_timer_mined_local_chains() -> None:
    times = BlockTimes(1.0, arrivals=Arrivals.STEADY)
    assert times.bounds(100) == pytest.approx((100 * (1 - STEADY_SLACK), 100 * (1 + STEADY_SLACK)))
    assert times.bounds(0) == (0.0, 0.0)
    assert times.blocks_for(90.0) == 100


def test_settings_name_the_model_and_probability() -> None:
    base = {"rpc_url": "http://127.0.0.1:1", "seed": "00" * 32}
    settings = BitcoinSettings.from_mapping(
        {**base, "block_arrivals": "steady", "timelock_probability": 1e-9}
    )
    assert settings.block_times == BlockTimes(600.0, 1e-9, Arrivals.STEADY)
    assert BitcoinSettings.from_mapping(base).block_times == BlockTimes(600.0, 1e-6, Arrivals.RANDOM)
    with pytest.raises(ValueError, match="timelock_probability"):
        BlockTimes(600.0, 0.7)
    with pytest.raises(ValueError):
        BitcoinSettings.from_mapping({**base, "block_arrivals": "sometimes"})
