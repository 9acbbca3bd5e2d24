"""Prometheus metrics: swaps by status and the MQTT backlog read from the store at scrape time,
block lag and RPC latency set by the chain adapters through ``Metrics``, chain loop failures counted by
the supervisor.

prometheus_client writes the exposition format (escaping, HELP/TYPE lines, content type) the way
Prometheus parses it, and gives adapters the usual gauge API; a registry per app keeps tests apart.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from settlerd.notify.cursor import acked_seq
from settlerd.store import Store
from settlerd.swap import Status

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._swaps = Gauge("settlerd_swaps", "Swaps by status.", ["status"], registry=self.registry)
        self._mqtt_backlog: Gauge | None = None  # registered once MQTT is known to be on
        self._event_head = Gauge(
            "settlerd_event_log_head_seq",
            "Sequence number of the last event in the log.",
            registry=self.registry,
        )
        self._block_lag = Gauge(
            "settlerd_block_lag_blocks",
            "Blocks the chain's scanner is behind the node's tip.",
            ["chain"],
            registry=self.registry,
        )
        self._rpc_latency = Gauge(
            "settlerd_rpc_latency_seconds",
            "Duration of the chain node's latest RPC call.",
            ["chain"],
            registry=self.registry,
        )

        self._loop_failures = Counter(
            "settlerd_chain_loop_failures",
            "Failures of the chain's scanner loop, each restarted with backoff; any increase is an alert.",
            ["chain"],
            registry=self.registry,
        )

    def chain_loop_failed(self, chain: str) -> None:
        self._loop_failures.labels(chain=chain).inc()

    def set_block_lag(self, chain: str, blocks: int) -> None:
        self._block_lag.labels(chain=chain).set(blocks)

    def set_rpc_latency(self, chain: str, seconds: float) -> None:
        self._rpc_latency.labels(chain=chain).set(seconds)

    async def render(self, store: Store, *, mqtt_enabled: bool) -> bytes:
        """Refresh what the store knows, then the whole exposition."""
        counts = await store.count_by_status()
        for status in Status:
            self._swaps.labels(status=str(status)).set(counts.get(str(status), 0))
        head = (await store.chain_head()).seq
        self._event_head.set(head)
        if mqtt_enabled:
            if self._mqtt_backlog is None:
                self._mqtt_backlog = Gauge(
                    "settlerd_mqtt_backlog_events",
                    "Events in the log not yet acknowledged by the MQTT broker (head seq - acked seq).",
                    registry=self.registry,
                )
            self._mqtt_backlog.set(head - await acked_seq(store))
        return generate_latest(self.registry)
