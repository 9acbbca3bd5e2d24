"""Chain checks: each configured chain's adapter is built (its settings checked) and asked to diagnose
itself; balances of the assets named in the risk limits come from the adapter's ``spendable``."""

from __future__ import annotations

import asyncio
from typing import Any

from settlerd import adapters
from settlerd.adapters import AdapterStore, ChainAdapter, Check, CheckStatus, Diagnosable
from settlerd.chains import adapter_settings
from settlerd.config import Settings
from settlerd.config.credentials import CredentialError

# An adapter's own checks bound each call to a few seconds; this catches one that does not (a third-party
# adapter, or many slow calls in a row), so the doctor always ends.
DIAGNOSE_TIMEOUT_S = 30.0
BALANCE_TIMEOUT_S = 5.0


def risk_assets(settings: Settings, chain: str) -> list[str]:
    """Assets of ``chain`` named in the global or a counterparty's in-flight caps (keys ``chain:asset``)."""
    keys = set(settings.risk.max_in_flight)
    for counterparty in settings.counterparties.values():
        keys.update(counterparty.max_in_flight)
    return sorted(key.partition(":")[2] for key in keys if key.partition(":")[0] == chain)


async def diagnose_chain(settings: Settings, name: str, store: AdapterStore) -> list[Check]:
    kind = settings.chains[name].adapter
    try:
        info = adapters.find(kind)
        if info.factory is None:
            raise ValueError(f"adapter {kind!r} cannot be built (it declares no factory)")
        adapter: Any = info.factory(adapter_settings(settings, name), store)
    except (adapters.AdapterNotFound, CredentialError, ValueError, OSError, RuntimeError) as exc:
        return [Check(f"{name}.settings", CheckStatus.FAIL, str(exc), f"fix the [chains.{name}] table")]
    checks = [Check(f"{name}.settings", CheckStatus.OK, f"adapter {kind!r} accepts [chains.{name}]")]
    try:
        checks += await _diagnose(adapter, name, kind)
        if not any(c.status is CheckStatus.FAIL and c.name == f"{name}.node" for c in checks):
            tokens = [a for a in risk_assets(settings, name) if a != adapter.native_asset]
            checks += [await _balance(adapter, name, asset) for asset in tokens]
    finally:
        await adapter.close()
    return checks


async def _diagnose(adapter: ChainAdapter, name: str, kind: str) -> list[Check]:
    if not isinstance(adapter, Diagnosable):
        return [
            Check(
                f"{name}.node",
                CheckStatus.WARN,
                f"adapter {kind!r} offers no diagnose(); its node was not checked",
                "`settlerd run` checks it on start; ask the adapter's authors for diagnose()",
            )
        ]
    try:
        async with asyncio.timeout(DIAGNOSE_TIMEOUT_S):
            return await adapter.diagnose()
    except TimeoutError:
        found = f"the adapter's checks did not finish within {DIAGNOSE_TIMEOUT_S:.0f} s"
        return [Check(f"{name}.node", CheckStatus.FAIL, found, f"check the node at chains.{name}.rpc_url")]
    except Exception as exc:  # a node failing mid-way: one line saying so beats a traceback
        found = f"the adapter's checks failed: {exc or type(exc).__name__}"
        return [Check(f"{name}.node", CheckStatus.FAIL, found, f"check the node at chains.{name}.rpc_url")]


async def _balance(adapter: ChainAdapter, name: str, asset: str) -> Check:
    check = f"{name}.balance[{asset}]"
    try:
        async with asyncio.timeout(BALANCE_TIMEOUT_S):
            amount = await adapter.spendable(asset)
    except Exception as exc:  # a bad asset string, a token contract that reverts, a node that stalls
        found = f"cannot read the balance: {exc or type(exc).__name__}"
        return Check(check, CheckStatus.WARN, found, f"check the key {name}:{asset} in risk.max_in_flight")
    found = f"{amount} base units spendable"
    if amount == 0:
        fix = f"send {asset} to this chain's wallet (`GET /v1/wallets` shows its address)"
        return Check(check, CheckStatus.WARN, found, fix)
    return Check(check, CheckStatus.OK, found)
