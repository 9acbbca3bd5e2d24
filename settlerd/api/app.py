"""aiohttp application factory: the route table, middlewares and the registries handlers use."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from settlerd.config import Settings
from settlerd.engine import Capture
from settlerd.leadership import Replica
from settlerd.store import Store

from . import events, ops, swaps, trade
from .auth import ROUTE_SCOPES, TOKENS, Scope, bearer_auth
from .context import FEED, METRICS, READINESS, REPLICA, SETTINGS, STORE, STREAMS
from .errors import body_limit, json_errors, quiet_bad_requests
from .feed import LogFeed, feed_context
from .metrics import Metrics
from .readiness import Readiness, store_writable
from .streams import StreamSlots


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    scope: Scope | None  # None: open to anyone (liveness, the API description)


STATUS_ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/health", ops.health, None),
    Route("GET", "/v1/openapi.json", ops.openapi, None),
    Route("GET", "/v1/ready", ops.ready, "read"),
    Route("GET", "/metrics", ops.metrics, "read"),
    Route("GET", "/v1/swaps", swaps.list_swaps, "read"),
    Route("GET", "/v1/swaps/{id}", swaps.get_swap, "read"),
    Route("GET", "/v1/swaps/{id}/events", events.swap_events, "read"),
)

TRADE_ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/swaps", trade.create_swap, "trade"),
    Route("POST", "/v1/offers/accept", trade.accept_offer, "trade"),
    Route("POST", "/v1/swaps/{id}/acceptance", trade.register_acceptance, "trade"),
    Route("POST", "/v1/swaps/{id}/cancel", trade.cancel_swap, "trade"),
    Route("GET", "/v1/wallets", trade.wallets, "admin"),
)


def make_app(
    settings: Settings,
    store: Store,
    *,
    readiness: Readiness | None = None,
    metrics: Metrics | None = None,
    capture: Capture | None = None,
    routes: Sequence[Route] = (),
    replica: Replica | None = None,
    log_changed: asyncio.Event | None = None,
) -> web.Application:
    """The API. With ``capture`` it also serves trade capture (scope ``trade``); ``routes`` adds more.

    Pass the ``readiness`` and ``metrics`` registries the engine and adapters also hold, so their
    checks and gauges show in ``/v1/ready`` and ``/metrics``; the store's check is always added.
    With ``replica``, those also report its role and lease, and a standby answers trade routes ``503``.
    Pass the engine's ``log_changed`` wakeup so event streams hear of a change at once, not at the next poll.
    """
    max_body = settings.api.max_body_bytes
    quiet_bad_requests()
    app = web.Application(
        client_max_size=max_body, middlewares=[json_errors, body_limit(max_body), bearer_auth]
    )
    app[SETTINGS] = settings
    app[STORE] = store
    app[TOKENS] = list(settings.api.tokens)
    app[READINESS] = readiness or Readiness()
    app[READINESS].add("store", store_writable(store))
    app[METRICS] = metrics or Metrics()
    app[FEED] = feed = LogFeed(store, log_changed)
    app[STREAMS] = StreamSlots(settings.api.max_streams_per_token, settings.api.max_streams)
    app.cleanup_ctx.append(feed_context(feed))
    app.on_shutdown.append(_end_streams)
    app[ROUTE_SCOPES] = {}
    trading: tuple[Route, ...] = ()
    if capture is not None:
        app[trade.CAPTURE] = capture
        trading = TRADE_ROUTES
    if replica is not None:
        app[REPLICA] = replica
        replica.register_metrics(app[METRICS].registry)
        trading = tuple(Route(r.method, r.path, replica.gate(r.handler), r.scope) for r in trading)
    for route in (*STATUS_ROUTES, *trading, *routes):
        added = app.router.add_route(route.method, route.path, route.handler)
        if route.scope is not None:
            app[ROUTE_SCOPES][added] = route.scope
    return app


async def _end_streams(app: web.Application) -> None:
    """Runs before the server waits for handlers: open SSE streams end instead of holding up a stop."""
    app[FEED].close()
