"""Pre-lock checks: the first part of the risk engine.

Before we commit funds to a leg: enough spendable balance, and the configured limits on what may be
in flight per asset and per counterparty. A refusal becomes a ``LockRefused`` event with the reason,
so it is in the swap's timeline and the swap ends cancelled instead of waiting for a lock never made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from settlerd.adapters import ChainAdapter
from settlerd.swap import Leg, SwapState

from .ports import LiveSwaps


@dataclass(frozen=True)
class Limits:
    """Caps on the amounts of our own locks not yet settled, in base units, keyed ``chain:asset``."""

    per_asset: Mapping[str, int] = field(default_factory=dict)
    per_counterparty: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


def asset_key(chain: str, asset: str) -> str:
    return f"{chain}:{asset}"


def _in_flight(state: SwapState) -> bool:
    own = state.leg(state.role.own_leg)
    return own.lock_requested and not own.spent


class RiskCheck:
    def __init__(
        self, live: LiveSwaps, adapters: Mapping[str, ChainAdapter], limits: Limits | None = None
    ) -> None:
        self._live = live
        self._adapters = adapters
        self._limits = limits or Limits()
        # Locks asked for since start whose check has not run yet: they wait in their chain's worker and
        # must not count against the swaps checked before them, or a burst would refuse the first comers.
        # One chain's locks are checked one at a time, so none is admitted unseen. After a restart every
        # requested lock counts, as it may already be on its way.
        self._unchecked: set[str] = set()

    def asked(self, swap_id: str) -> None:
        """The state machine asked to lock our leg of ``swap_id``; its check is still to come."""
        self._unchecked.add(swap_id)

    def exposure(self, key: str, counterparty: str | None = None) -> int:
        total = 0
        for live in self._live.values():
            state = live.state
            terms = state.terms.leg(state.role.own_leg)
            if asset_key(terms.chain, terms.asset) != key or not _in_flight(state):
                continue
            if state.swap_id in self._unchecked:
                continue
            if counterparty is None or live.counterparty == counterparty:
                total += terms.amount
        return total

    async def refusal(self, state: SwapState, leg: Leg) -> str | None:
        """Why we must not lock ``leg`` now, or None."""
        self._unchecked &= set(self._live)  # swaps that ended (refused on timing) leave
        self._unchecked.discard(state.swap_id)
        terms = state.terms.leg(leg)
        key = asset_key(terms.chain, terms.asset)
        counterparty = self._live[state.swap_id].counterparty
        # The swap being locked is already marked requested, so it counts in its own exposure.
        cap = self._limits.per_asset.get(key)
        if cap is not None and self.exposure(key) > cap:
            return f"in-flight {key} would be {self.exposure(key)}, above the limit {cap}"
        cap = self._limits.per_counterparty.get(counterparty, {}).get(key)
        if cap is not None and self.exposure(key, counterparty) > cap:
            return (
                f"in-flight {key} with {counterparty} would be {self.exposure(key, counterparty)}, "
                f"above the limit {cap}"
            )
        balance = await self._adapters[terms.chain].spendable(terms.asset)
        if balance < terms.amount:
            return f"spendable {key} balance {balance} is below the amount {terms.amount}"
        return None
