"""Daemon lifecycle: start every component, run them under one TaskGroup, stop cleanly on a signal.

Start-up order is store (migrations), API listener, then the long-running tasks; each failure at start
becomes a `StartupError` whose one-line message the CLI prints before exiting non-zero.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypeVar

from aiohttp import web

from settlerd import __version__, notify
from settlerd.adapters import ChainAdapter
from settlerd.api import Metrics, Readiness, make_app
from settlerd.chains import ChainStartError, build, started
from settlerd.chains import health as chain_health
from settlerd.chains.supervisor import ChainLoop
from settlerd.config import Settings
from settlerd.config.credentials import CredentialError, read_secret
from settlerd.engine import Capture, CaptureSettings, Engine, Limits, NodeKey
from settlerd.engine.risk import asset_key
from settlerd.leadership import Replica, ReplicaRefused, keys_fingerprint
from settlerd.sdnotify import Notifier, watchdog_interval
from settlerd.store import Store, StoreError
from settlerd.store.lease import LeadershipLost

log = logging.getLogger("settlerd.daemon")


class StartupError(Exception):
    """A component could not start; the message says which and why, in one line.

    ``bad_config`` when a setting is at fault: the CLI exits 2, which systemd does not restart on."""

    def __init__(self, message: str, *, bad_config: bool = False) -> None:
        super().__init__(message)
        self.bad_config = bad_config


class StoreFailed(Exception):
    """The store failed while the daemon ran (a full disk, a lost database); one line naming both.

    The daemon stops rather than carry on unable to record what it does (S4, S6); its supervisor
    restarts it, and start-up says plainly whether the store works again."""


_E = TypeVar("_E", bound=BaseException)


def _first_leaf(group: BaseExceptionGroup[_E]) -> _E:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


class _StopRequested(Exception):
    """Raised inside the TaskGroup to unwind every task once a stop signal arrived."""


@asynccontextmanager
async def _api_listener(
    settings: Settings,
    store: Store,
    capture: Capture | None,
    readiness: Readiness,
    metrics: Metrics,
    replica: Replica,
    log_changed: asyncio.Event,
) -> AsyncIterator[str]:
    app = make_app(
        settings,
        store,
        readiness=readiness,
        metrics=metrics,
        capture=capture,
        replica=replica,
        log_changed=log_changed,
    )
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.api.host, settings.api.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(
            f"api: cannot listen on {settings.api.host}:{settings.api.port} ({exc.strerror or exc}); "
            "set api.host / api.port to a free address"
        ) from None
    try:
        host, port = runner.addresses[0][:2]  # the real port when api.port = 0
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def _open_store(url: str) -> Store:
    try:
        return await Store.open(url)
    except StoreError as exc:
        raise StartupError(f"store: {exc}") from None


def _node_key(settings: Settings) -> NodeKey | None:
    """The key signing offers, acceptances and MQTT messages, when one is configured."""
    if settings.engine.node_key_file is None:
        return None
    try:
        return NodeKey.from_hex(read_secret("engine.node_key_file", settings.engine.node_key_file))
    except (CredentialError, ValueError) as exc:
        raise StartupError(f"engine: {exc}") from None


def _capture(settings: Settings, engine: Engine, key: NodeKey | None) -> Capture | None:
    """Trade capture, when a node key is configured to sign offers and acceptances."""
    if key is None:
        return None
    policy = settings.policy
    return Capture(
        engine,
        key,
        CaptureSettings(
            node_id=settings.node_id,
            leg1_duration=policy.leg1_duration,
            leg2_duration=policy.leg2_duration,
            policy=policy.to_policy(),
            finality_depth={name: chain.finality_depth for name, chain in settings.chains.items()},
            counterparty_keys={name: c.node_key for name, c in settings.counterparties.items()},
            allow_unknown_counterparties=settings.engine.allow_unknown_counterparties,
        ),
    )


def _limits(settings: Settings, chains: Mapping[str, ChainAdapter]) -> Limits:
    """The in-flight caps keyed on each asset's canonical spelling, the one capture writes into terms:
    a cap on ``evm:eth`` must hold for ``evm:ETH`` locks (the config check made sure each chain exists)."""

    def canonical(where: str, limits: Mapping[str, int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for key, cap in limits.items():
            chain, _, asset = key.partition(":")
            try:
                same = asset_key(chain, chains[chain].canonical_asset(asset))
            except ValueError as exc:
                raise StartupError(f"{where}.{key}: {exc}") from None
            if same in out:
                raise StartupError(f"{where}: {key} and another key both name {same}; keep one")
            out[same] = cap
        return out

    return Limits(
        per_asset=canonical("risk.max_in_flight", settings.risk.max_in_flight),
        per_counterparty={
            name: canonical(f"counterparties.{name}.max_in_flight", c.max_in_flight)
            for name, c in settings.counterparties.items()
        },
    )


async def _watchdog(notifier: Notifier) -> None:
    interval = watchdog_interval()
    if interval is None:
        return
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval.total_seconds())


async def _wait_for_stop(stop: asyncio.Event) -> None:
    await stop.wait()
    raise _StopRequested


class _Acting:
    """What only the process that may act does: wait to lead, resume every live swap from the store,
    then run the chains, the engine and the MQTT publisher while the lease holds."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        chains: dict[str, ChainAdapter],
        engine: Engine,
        replica: Replica,
        readiness: Readiness,
        metrics: Metrics,
        notifier: Notifier,
    ) -> None:
        self.settings, self.store, self.chains, self.engine = settings, store, chains, engine
        self.replica, self.readiness, self.metrics, self.notifier = replica, readiness, metrics, notifier

    async def run(self, api_url: str, key: NodeKey | None, trading: bool, mqtt_wakeup: asyncio.Event) -> None:
        await self.replica.lead(self.settings.store.advertise_url or api_url)
        # Renewed from the moment it is held: resuming (adapters catching up) may outlast a lease.
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.replica.keep(), name="lease")
            tasks.create_task(self._act(api_url, key, trading, mqtt_wakeup), name="act")

    async def _act(self, api_url: str, key: NodeKey | None, trading: bool, wakeup: asyncio.Event) -> None:
        """Resume every live swap from the store, start the chains, then run until cancelled."""
        settings, store, chains, engine, replica = (
            self.settings, self.store, self.chains, self.engine, self.replica
        )  # fmt: skip
        try:
            resumed = await engine.restore()
        except LeadershipLost:
            raise
        except StoreError as exc:
            raise StartupError(f"store: {exc}") from None
        loops = {
            name: ChainLoop(name, a, on_failure=self.metrics.chain_loop_failed) for name, a in chains.items()
        }
        chain_health.register(
            chains, self.readiness, self.metrics, {name: cl.health for name, cl in loops.items()}
        )
        self.readiness.add("engine", chain_health.engine_check(engine.unresumable))
        async with AsyncExitStack() as running:
            try:
                await running.enter_async_context(started(chains))
            except ChainStartError as exc:
                raise StartupError(str(exc), bad_config=exc.bad_config) from None
            try:
                await engine.retry_unfinished()
            except LeadershipLost:
                raise
            except StoreError as exc:
                raise StartupError(f"store: {exc}") from None
            replica.acting = True
            log.info(
                "settlerd %s serving node %s as %s: API %s, store %s, chains %s, %d live swaps resumed, %s",
                __version__,
                settings.node_id,
                replica.role,
                api_url,
                store.describe(),
                ", ".join(settings.chains) or "none configured",
                resumed,
                # Counterparties list this key under [counterparties.<our node id>] to trade with us.
                f"trading on, node key {key.public_hex}"
                if trading and key
                else "trading off (set engine.node_key_file to sign offers)",
            )
            self.notifier.ready(f"serving {api_url} as {replica.role}")
            async with asyncio.TaskGroup() as tasks:
                for name, chain_loop in loops.items():
                    tasks.create_task(chain_loop.run(), name=f"chain-{name}")
                tasks.create_task(engine.run(), name="engine")
                if settings.mqtt.enabled:
                    tasks.create_task(notify.run(store, settings, wakeup, key=key), name="mqtt-publisher")


async def run(
    settings: Settings, *, stop: asyncio.Event | None = None, on_sighup: Callable[[], None] | None = None
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); SIGHUP calls ``on_sighup`` (logs). Raises
    StartupError if a component cannot start."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if on_sighup is not None:
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    notifier = Notifier.from_env()
    mqtt_wakeup = asyncio.Event()
    sse_wakeup = asyncio.Event()
    try:
        async with AsyncExitStack() as stack:
            store = await _open_store(settings.store.url)
            stack.push_async_callback(store.close)
            key = _node_key(settings)
            try:
                fingerprint = keys_fingerprint(settings) if store.backend == "postgresql" else ""
            except CredentialError as exc:
                raise StartupError(f"chains: {exc}", bad_config=True) from None
            replica = Replica(
                store,
                node_id=settings.node_id,
                node_key=key.public_hex if key else None,
                lease=settings.store.lease,
                keys_fingerprint=fingerprint,
            )
            try:
                await replica.admit()
            except (ReplicaRefused, StoreError) as exc:
                raise StartupError(f"store: {exc}") from None
            stack.callback(replica.close)
            try:
                chains = build(settings, store)
            except ChainStartError as exc:
                raise StartupError(str(exc), bad_config=exc.bad_config) from None
            engine = Engine(
                store,
                chains,
                limits=_limits(settings, chains),
                tick=settings.engine.tick,
                wakeups=[mqtt_wakeup, sse_wakeup],
            )
            capture = _capture(settings, engine, key)
            metrics = Metrics()
            readiness = Readiness()
            readiness.add("replica", replica.check)
            api_url = await stack.enter_async_context(
                _api_listener(settings, store, capture, readiness, metrics, replica, sse_wakeup)
            )
            # Registered last, so it runs first on the way out: the lease goes to a standby at once.
            stack.push_async_callback(replica.release)
            if replica.replicated:
                notifier.ready(f"standby, serving {api_url}")
            acting = _Acting(settings, store, chains, engine, replica, readiness, metrics, notifier)
            try:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(_watchdog(notifier), name="sd-watchdog")
                    tasks.create_task(_wait_for_stop(stop), name="stop-signal")
                    tasks.create_task(
                        acting.run(api_url, key, capture is not None, mqtt_wakeup), name="acting"
                    )
            except* _StopRequested:
                pass
            except* StartupError as failed:
                raise _first_leaf(failed) from None
            except* StoreError as failed:
                raise StoreFailed(f"store: {_first_leaf(failed)}") from None
            log.info("stopping: all tasks cancelled, closing API and store")
            notifier.stopping()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        notifier.close()
    log.info("stopped cleanly")
