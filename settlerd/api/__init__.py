"""The HTTP API (aiohttp) under /v1."""

from settlerd.api.app import STATUS_ROUTES, Route, make_app
from settlerd.api.metrics import Metrics
from settlerd.api.readiness import Readiness

__all__ = ["STATUS_ROUTES", "Metrics", "Readiness", "Route", "make_app"]
