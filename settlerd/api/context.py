"""What handlers find on the app: the store, settings and the registries the engine and adapters feed."""

from __future__ import annotations

from aiohttp import web

from settlerd.config import Settings
from settlerd.leadership import Replica
from settlerd.store import Store

from .feed import LogFeed
from .metrics import Metrics
from .readiness import Readiness
from .streams import StreamSlots

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
STORE: web.AppKey[Store] = web.AppKey("store", Store)
FEED: web.AppKey[LogFeed] = web.AppKey("feed", LogFeed)
READINESS: web.AppKey[Readiness] = web.AppKey("readiness", Readiness)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
STREAMS: web.AppKey[StreamSlots] = web.AppKey("streams", StreamSlots)
REPLICA: web.AppKey[Replica] = web.AppKey("replica", Replica)
