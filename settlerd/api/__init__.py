"""The HTTP API (aiohttp) under /v1."""

from settlerd.api.app import make_app

__all__ = ["make_app"]
