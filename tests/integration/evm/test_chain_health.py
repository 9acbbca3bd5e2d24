"""Readiness and gauges per chain: a scanner that falls behind its node makes the daemon not ready."""

from __future__ import annotations

from settlerd.api import Metrics, Readiness
from settlerd.chains import health as chain_health
from settlerd.store import Store
from tests.fixtures.anvil import Anvil

from .conftest import MakeAdapter


async def test_ready_while_caught_up_and_not_ready_when_behind(
    anvil: Anvil, make_adapter: MakeAdapter, store: Store
) -> None:
    adapter = await make_adapter(anvil.keys[2], store)  # its scanner is polled by hand only
    await adapter.scanner.poll()
    readiness, metrics = Readiness(), Metrics()
    chain_health.register({"eth": adapter}, readiness, metrics)

    [result] = await readiness.run()
    assert (result.name, result.ok) == ("chain:eth", True)

    for _ in range(chain_health.MAX_READY_LAG_BLOCKS + 3):
        anvil.rpc("evm_mine")
    [result] = await readiness.run()
    assert not result.ok
    assert result.error is not None and "behind" in result.error
    exposition = (await metrics.render(store, mqtt_enabled=False)).decode()
    assert f'settlerd_block_lag_blocks{{chain="eth"}} {chain_health.MAX_READY_LAG_BLOCKS + 3}.0' in exposition

    await adapter.scanner.poll()
    [result] = await readiness.run()
    assert result.ok
