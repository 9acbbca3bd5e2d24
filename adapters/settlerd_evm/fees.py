"""EIP-1559 fees under an operator's cap, and the bump that replaces a stuck transaction."""

from __future__ import annotations

from dataclasses import dataclass

GWEI = 10**9
# Twice the base fee stays above it through six full blocks in a row (+12.5% each), so a quote does not
# fall behind while the transaction waits.
BASE_FEE_MULTIPLIER = 2
# Nodes accept a replacement at the same nonce only if both fees rise by at least 10%; 12.5% clears that
# after integer rounding.
BUMP_NUMERATOR, BUMP_DENOMINATOR = 9, 8


class FeeCapReached(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class FeePolicy:
    max_fee_per_gas: int  # the cap: never offer more per gas than this
    priority_fee_per_gas: int = 1 * GWEI


@dataclass(frozen=True, slots=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


def quote(base_fee: int, policy: FeePolicy) -> Fees:
    tip = min(policy.priority_fee_per_gas, policy.max_fee_per_gas)
    if base_fee + tip > policy.max_fee_per_gas:
        raise FeeCapReached(
            f"base fee {base_fee / GWEI:.2f} gwei plus tip exceeds the cap of "
            f"{policy.max_fee_per_gas / GWEI:.2f} gwei: raise max_fee_gwei in the evm chain settings or wait"
        )
    return Fees(min(policy.max_fee_per_gas, BASE_FEE_MULTIPLIER * base_fee + tip), tip)


def bump(previous: Fees, base_fee: int, policy: FeePolicy) -> Fees:
    """Fees for a replacement: both fields 12.5% above the previous ones, and no less than a fresh quote."""

    def up(x: int) -> int:
        return -(-x * BUMP_NUMERATOR // BUMP_DENOMINATOR)

    fresh = quote(base_fee, policy)
    tip = max(up(previous.max_priority_fee_per_gas), fresh.max_priority_fee_per_gas)
    max_fee = max(up(previous.max_fee_per_gas), fresh.max_fee_per_gas, tip)
    if max_fee > policy.max_fee_per_gas:
        raise FeeCapReached(
            f"replacing the transaction needs {max_fee / GWEI:.2f} gwei, above the cap of "
            f"{policy.max_fee_per_gas / GWEI:.2f} gwei: raise max_fee_gwei in the evm chain settings"
        )
    return Fees(max_fee, tip)
