"""Liveness, readiness (a registry the engine adds to) and Prometheus metrics."""

from __future__ import annotations

from settlerd.api import Metrics, Readiness
from settlerd.store import Store

from .conftest import Api
from .swaps import advance, create_swap


async def test_ready_when_the_store_takes_a_write(api: Api) -> None:
    reply = await api.get("/v1/ready")
    assert reply.status == 200
    assert reply.body == {"ready": True, "checks": {"store": {"ok": True, "error": None}}}


async def test_a_failing_registered_check_makes_it_not_ready(api: Api, readiness: Readiness) -> None:
    refused = "bitcoin node 127.0.0.1:18443 refused the connection; is bitcoind running?"

    async def bitcoin_node() -> None:
        raise ConnectionError(refused)

    async def scanner() -> None:
        return None

    readiness.add("bitcoin-node", bitcoin_node)
    readiness.add("bitcoin-scanner", scanner)
    reply = await api.get("/v1/ready")
    assert reply.status == 503 and reply.body["ready"] is False
    checks = reply.body["checks"]
    assert checks["bitcoin-node"] == {"ok": False, "error": refused}
    assert checks["bitcoin-scanner"]["ok"] and checks["store"]["ok"]


async def test_metrics_count_swaps_by_status_in_prometheus_format(api: Api, store: Store) -> None:
    for name in ("m-1", "m-2", "m-3"):
        await create_swap(store, name)
    await advance(store, "m-2", 0)
    reply = await api.get("/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    lines = reply.body.splitlines()
    assert 'settlerd_swaps{status="offered"} 2.0' in lines
    assert 'settlerd_swaps{status="accepted"} 1.0' in lines
    assert 'settlerd_swaps{status="completed"} 0.0' in lines
    assert "settlerd_event_log_head_seq 4.0" in lines
    assert "# TYPE settlerd_block_lag_blocks gauge" in lines
    assert not any(line.startswith("settlerd_mqtt_backlog_events ") for line in lines)  # MQTT is off here


async def test_adapters_set_block_lag_and_rpc_latency(api: Api, metrics: Metrics) -> None:
    metrics.set_block_lag("bitcoin", 3)
    metrics.set_rpc_latency("evm", 0.25)
    lines = (await api.get("/metrics")).body.splitlines()
    assert 'settlerd_block_lag_blocks{chain="bitcoin"} 3.0' in lines
    assert 'settlerd_rpc_latency_seconds{chain="evm"} 0.25' in lines
