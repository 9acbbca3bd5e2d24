"""Bearer tokens and scopes; bad input gets a 4xx JSON naming the field, never a 500 or a traceback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from settlerd.api import Route, make_app
from settlerd.store import Store

from .conftest import TOKENS, Api, make_settings
from .swaps import create_swap


async def test_health_and_openapi_need_no_token(api: Api) -> None:
    health = await api.get("/v1/health", token=None)
    assert health.status == 200 and health.body["node_id"] == "api-test"
    document = await api.get("/v1/openapi.json", token=None)
    assert document.status == 200 and document.body["openapi"] == "3.1.0"


@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        (None, None),
        ("Bearer not-a-configured-token", "invalid_token"),
        ("Basic dXNlcjpwYXNz", "invalid_request"),
        ("Bearer ", "invalid_request"),
    ],
)
async def test_missing_or_bad_token_gets_401_with_a_challenge(
    api: Api, store: Store, authorization: str | None, error: str | None
) -> None:
    await create_swap(store, "guarded")
    headers = {"Authorization": authorization} if authorization is not None else {}
    for path in ("/v1/swaps", "/v1/swaps/guarded", "/v1/swaps/guarded/events", "/v1/ready", "/metrics"):
        reply = await api.get(path, token=None, headers=headers)
        assert reply.status == 401, path
        assert reply.body["field"] == "Authorization"
        challenge = reply.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="settlerd"')
        assert (f'error="{error}"' in challenge) if error else ("error=" not in challenge)


async def test_every_scope_reads(api: Api, store: Store) -> None:
    await create_swap(store, "readable")
    for token in TOKENS.values():
        assert (await api.get("/v1/swaps/readable", token=token)).status == 200


@pytest.fixture
async def extended(store: Store, tmp_path: Path) -> AsyncIterator[str]:
    """The API with routes plugged in the way trade capture will be: one needing `trade`, one failing."""

    async def trade_probe(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("database row 42 is odd")

    routes = [Route("POST", "/v1/probe", trade_probe, "trade"), Route("GET", "/v1/broken", broken, "read")]
    app = make_app(make_settings(tmp_path / "api.sqlite3", max_body_bytes=4096), store, routes=routes)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


async def test_wrong_scope_gets_403_and_enough_scope_passes(extended: str) -> None:
    async with aiohttp.ClientSession() as session:

        def auth(scope: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {TOKENS[scope]}"}

        async with session.post(extended + "/v1/probe", headers=auth("read")) as r:
            assert r.status == 403
            body = await r.json()
            assert body["field"] == "Authorization" and "'trade'" in body["error"]
            assert 'error="insufficient_scope", scope="trade"' in r.headers["WWW-Authenticate"]
        for scope in ("trade", "admin"):
            async with session.post(extended + "/v1/probe", headers=auth(scope)) as r:
                assert r.status == 200


async def test_oversized_body_gets_413_before_any_handler(extended: str) -> None:
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {TOKENS['trade']}", "Content-Type": "application/json"}
        async with session.post(
            extended + "/v1/probe", data=b"[" + b"0," * 5000 + b"0]", headers=headers
        ) as r:
            assert r.status == 413
            assert (await r.json())["field"] == "body"


async def test_unexpected_exception_is_a_500_without_details(
    extended: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with aiohttp.ClientSession() as session:
        with caplog.at_level(logging.ERROR, logger="settlerd.api"):
            headers = {"Authorization": f"Bearer {TOKENS['read']}"}
            async with session.get(extended + "/v1/broken", headers=headers) as r:
                text = await r.text()
                assert r.status == 500
                assert r.headers["Content-Type"].startswith("application/json")
        assert "row 42" not in text and "Traceback" not in text and "RuntimeError" not in text
        assert any("GET /v1/broken failed" in rec.getMessage() and rec.exc_info for rec in caplog.records)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/swaps", {"limit": "0"}, "limit"),
        ("/v1/swaps", {"limit": "201"}, "limit"),
        ("/v1/swaps", {"limit": "ten"}, "limit"),
        ("/v1/swaps", {"status": "settled"}, "status"),
        ("/v1/swaps", {"status": ""}, "status"),
        ("/v1/swaps", {"created_since": "yesterday"}, "created_since"),
        ("/v1/swaps", {"created_since": "2026-01-01T00:00:00"}, "created_since"),
        ("/v1/swaps", {"cursor": "not-a-cursor"}, "cursor"),
        ("/v1/swaps", {"colour": "red"}, "colour"),
        ("/v1/swaps/bad%20id", {}, "id"),
        ("/v1/swaps/bad%20id/events", {}, "id"),
        ("/v1/swaps/known/events", {"after": "-1"}, "after"),
        ("/v1/swaps/known/events", {"limit": "0"}, "limit"),
        ("/v1/swaps/known", {"verbose": "1"}, "verbose"),
    ],
)
async def test_bad_input_gets_400_naming_the_field(
    api: Api, store: Store, path: str, params: dict[str, str], field: str
) -> None:
    await create_swap(store, "known")
    reply = await api.get(path, params=params)
    assert reply.status == 400, reply.body
    assert reply.body["field"] == field and reply.body["error"]


async def test_repeated_parameter_is_refused(api: Api) -> None:
    reply = await api.get("/v1/swaps?limit=1&limit=2")
    assert reply.status == 400 and reply.body["field"] == "limit"


async def test_unknown_swap_is_404_naming_the_id(api: Api) -> None:
    for path in ("/v1/swaps/missing", "/v1/swaps/missing/events"):
        reply = await api.get(path)
        assert reply.status == 404 and reply.body["field"] == "id"


async def test_unknown_route_and_method_get_json_errors(api: Api) -> None:
    async with api.session.get(api.base + "/v1/nothing-here") as r:
        assert r.status == 404 and (await r.json())["field"] is None
    async with api.session.delete(api.base + "/v1/swaps", headers={"Authorization": "Bearer x"}) as r:
        assert r.status == 405 and "GET" in r.headers["Allow"]
        assert (await r.json())["error"].startswith("DELETE is not allowed")
