"""Fees, swap ids, log decoding and timelock conversion: pure functions, no node."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from eth_abi import encode
from settlerd_evm import contract as c
from settlerd_evm import fees
from settlerd_evm.adapter import TIMESTAMP_DRIFT_S, EvmAdapter, EvmSettings

POLICY = fees.FeePolicy(max_fee_per_gas=100 * fees.GWEI, priority_fee_per_gas=2 * fees.GWEI)
KEY = "0x" + "11" * 32


def test_quote_doubles_the_base_fee_within_the_cap() -> None:
    assert fees.quote(10 * fees.GWEI, POLICY) == fees.Fees(22 * fees.GWEI, 2 * fees.GWEI)
    assert fees.quote(60 * fees.GWEI, POLICY).max_fee_per_gas == 100 * fees.GWEI
    with pytest.raises(fees.FeeCapReached, match="max_fee_gwei"):
        fees.quote(99 * fees.GWEI, POLICY)


def test_bump_raises_both_fees_enough_for_a_replacement_and_stops_at_the_cap() -> None:
    old = fees.quote(10 * fees.GWEI, POLICY)
    new = fees.bump(old, 10 * fees.GWEI, POLICY)
    assert new.max_fee_per_gas * 10 >= old.max_fee_per_gas * 11
    assert new.max_priority_fee_per_gas * 10 >= old.max_priority_fee_per_gas * 11
    with pytest.raises(fees.FeeCapReached):
        fees.bump(fees.Fees(95 * fees.GWEI, 2 * fees.GWEI), 10 * fees.GWEI, POLICY)


def test_locked_log_round_trip_gives_the_contract_id() -> None:
    hashlock = c.hashlock_of(b"\x07" * 32)
    token, sender, recipient = "0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20
    data = encode(["address", "address", "address", "uint256", "uint256"], [token, sender, recipient, 5, 99])
    log = c.decode_log([c.LOCKED_TOPIC, hashlock], data)
    assert isinstance(log, c.LockedLog) and (log.amount, log.timelock) == (5, 99)
    assert log.id == c.swap_id(token, sender, 99, hashlock)
    assert c.decode_log([b"\x00" * 32], b"") is None


async def test_timelock_never_lets_a_refund_through_before_the_deadline() -> None:
    adapter = EvmAdapter(
        EvmSettings(rpc_url="http://127.0.0.1:1", contract="0x" + "00" * 20, private_key=KEY, block_lag_s=30),
        None,  # type: ignore[arg-type]
    )
    deadline = datetime(2030, 1, 1, 12, 0, 0, 500_000, tzinfo=UTC)
    timelock = await adapter.timelock_for(deadline)
    assert timelock - TIMESTAMP_DRIFT_S >= deadline.timestamp()
    bounds = await adapter.bounds_of(timelock)
    assert bounds.earliest >= deadline
    assert bounds.earliest - deadline < timedelta(seconds=1)
    # The latest: a block stamped at or after the timelock, at most the configured lag after it.
    assert bounds.latest == datetime.fromtimestamp(timelock + 30, UTC)


def test_unknown_settings_are_named() -> None:
    with pytest.raises(Exception, match="max_fee"):
        EvmSettings.from_mapping({"rpc_url": "x", "contract": "y", "private_key": KEY, "max_fee": 1})
