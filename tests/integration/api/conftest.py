"""A real API on a free port over a real SQLite store; every response a test sees is checked against
the OpenAPI document the API serves."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from settlerd.api import Metrics, Readiness, make_app
from settlerd.config import ApiSettings, ApiToken, MqttSettings, Settings, StoreSettings
from settlerd.store import Store

from .openapi_check import OpenApiChecker

TOKENS = {scope: f"token-for-{scope}-0123456789abcdef" for scope in ("read", "trade", "admin")}


def token_settings() -> list[ApiToken]:
    return [
        ApiToken(name=f"{scope}-user", scope=scope, sha256=hashlib.sha256(token.encode()).hexdigest())  # type: ignore[arg-type]
        for scope, token in TOKENS.items()
    ]


def make_settings(db: Path, node_id: str = "api-test", **api: Any) -> Settings:
    return Settings(
        node_id=node_id,
        store=StoreSettings(url=f"sqlite:///{db}"),
        api=ApiSettings(port=0, tokens=token_settings(), **api),
        mqtt=MqttSettings(enabled=False),
    )


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON, or text for other media types


class Api:
    """An HTTP client for the running API; validates every reply against the OpenAPI document."""

    def __init__(self, base: str, session: aiohttp.ClientSession, checker: OpenApiChecker) -> None:
        self.base = base
        self.session = session
        self.checker = checker

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = TOKENS["read"],
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if token is not None:
            sent.setdefault("Authorization", f"Bearer {token}")
        async with self.session.request(
            method, self.base + path, headers=sent, params=params, data=data
        ) as r:
            raw = await r.read()
            media = r.headers.get("Content-Type", "")
            body: Any = json.loads(raw) if media.startswith("application/json") else raw.decode()
            assert "Traceback" not in raw.decode(errors="replace")
            self.checker.check(method, path, r.status, media, body)
            return Reply(r.status, r.headers, body)

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", path, **kwargs)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite:///{tmp_path / 'api.sqlite3'}")
    yield opened
    await opened.close()


@pytest.fixture
def readiness() -> Readiness:
    return Readiness()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def api(store: Store, tmp_path: Path, readiness: Readiness, metrics: Metrics) -> AsyncIterator[Api]:
    settings = make_settings(tmp_path / "api.sqlite3")
    app = make_app(settings, store, readiness=readiness, metrics=metrics)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/v1/openapi.json") as r:
            checker = OpenApiChecker(await r.json())
        yield Api(base, session, checker)
    await runner.cleanup()
