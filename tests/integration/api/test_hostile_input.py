"""Hostile input against a real daemon: each class of input that once reached a 500, or killed the
process, gets a 4xx naming what is wrong, and the daemon stays up with nothing alarming in its log.

The requests go out through http.client from inside hypothesis' examples: the daemon is another process,
so blocking this test's loop holds up nothing, and raw bytes (non-UTF-8 headers, bodies) reach the wire
as written.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from settlerd.engine.documents import NODE_ID
from settlerd.store import Store
from tests.fixtures.postgres import fresh_database

from .daemon import Daemon, running_daemon
from .swaps import HAPPY_PATH, advance, create_swap

MAX_SEQ = 2**63 - 1
MAX_BODY = 4 * 1024 * 1024  # far past what the depth limit needs: that limit must not rest on this one
# Streams the examples leave behind stay open until their next keepalive finds the client gone.
API = f"max_body_bytes = {MAX_BODY}\nmax_streams_per_token = 200"
EXAMPLES = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# Characters str.isdigit() takes that int() refuses, and other Unicode numbers.
UNICODE_DIGITS = st.text(
    st.characters(categories=["Nd", "No", "Nl"], exclude_characters="0123456789"), min_size=1, max_size=8
)


def call(
    daemon: Daemon,
    method: str,
    path: str,
    headers: dict[str, str | bytes] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, object] | str]:
    host, port = daemon.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        if response.getheader("Content-Type", "").startswith("text/event-stream"):
            return response.status, response.readline().decode()  # the stream stays open
        raw = response.read()
    finally:
        conn.close()
    if response.getheader("Content-Type", "").startswith("application/json"):
        return response.status, json.loads(raw)
    return response.status, raw.decode(errors="replace")


def bearer(token: str) -> dict[str, str | bytes]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    async with running_daemon(tmp_path, "hostile", trading=True, api=API) as d:
        store = await Store.open(f"sqlite:///{d.db}")
        try:
            await create_swap(store, "live")
            await create_swap(store, "ended")
            for step in range(len(HAPPY_PATH)):
                await advance(store, "ended", step)
        finally:
            await store.close()
        yield d
        assert d.process is not None and d.process.returncode is None, d.log()
        assert "Traceback" not in d.log() and '"level": "error"' not in d.log(), d.log()


async def test_sequence_numbers_of_any_size(daemon: Daemon) -> None:
    read = bearer(daemon.read_token_file.read_text().strip())

    @EXAMPLES
    @given(st.one_of(st.integers(MAX_SEQ - 2, 10**30).map(str), st.just("9" * 5000), st.just("0")))
    def check(seq: str) -> None:
        status, page = call(daemon, "GET", f"/v1/swaps/live/events?after={seq}", read)
        assert status == 200, page
        assert isinstance(page, dict) and len(page["events"]) == (1 if seq == "0" else 0), page  # type: ignore[arg-type]
        stream = {**read, "Accept": "text/event-stream", "Last-Event-ID": seq}
        status, first_line = call(daemon, "GET", "/v1/swaps/live/events", stream)
        assert (status, first_line) == (200, "retry: 2000\n")

    check()


async def test_unicode_digits_are_not_numbers(daemon: Daemon) -> None:
    read = bearer(daemon.read_token_file.read_text().strip())
    trade = {**bearer(daemon.trade_token), "Content-Type": "application/json"}

    @EXAMPLES
    @given(UNICODE_DIGITS)
    def check(digits: str) -> None:
        for name in ("after", "limit"):
            status, error = call(daemon, "GET", f"/v1/swaps/live/events?{name}={quote(digits)}", read)
            assert (status, error["field"]) == (400, name), error  # type: ignore[index]
        status, error = call(daemon, "GET", f"/v1/swaps?limit={quote(digits)}", read)
        assert (status, error["field"]) == (400, "limit"), error  # type: ignore[index]
        stream = {**read, "Accept": "text/event-stream", "Last-Event-ID": digits.encode()}
        status, error = call(daemon, "GET", "/v1/swaps/live/events", stream)
        assert (status, error["field"]) == (400, "Last-Event-ID"), error  # type: ignore[index]
        leg = {"chain": "bitcoin", "asset": "BTC", "amount": digits}
        order = {"counterparty": "desk-b", "give": leg, "get": leg}
        status, error = call(daemon, "POST", "/v1/swaps", trade, json.dumps(order).encode())
        assert (status, error["field"]) == (400, "give.amount"), error  # type: ignore[index]

    check()


async def test_lone_surrogates_are_refused(daemon: Daemon) -> None:
    trade = {**bearer(daemon.trade_token), "Content-Type": "application/json"}
    bodies = {
        "/v1/swaps": '{"counterparty": "%s", "give": {}, "get": {}}',
        "/v1/offers/accept": '{"type": "settlerd.offer", "swap_id": "%s"}',
        "/v1/swaps/live/acceptance": '{"type": "settlerd.acceptance", "leg2_sender": "x%sy"}',
        "/v1/swaps/live/cancel": '{"reason": "%s"}',
    }

    @EXAMPLES
    @given(st.integers(0xD800, 0xDFFF), st.sampled_from(sorted(bodies)))
    def check(code_point: int, path: str) -> None:
        body = (bodies[path] % f"\\u{code_point:04x}").encode()
        status, error = call(daemon, "POST", path, trade, body)
        assert (status, error["field"]) == (400, "body"), error  # type: ignore[index]

    check()


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return True
    return False


async def test_authorization_of_any_bytes_is_a_401(daemon: Daemon) -> None:
    # No control characters: those the HTTP parser refuses (400) before any handler runs.
    visible = st.integers(0x21, 0xFF).filter(lambda b: b != 0x7F)
    header_bytes = st.lists(visible, min_size=1, max_size=40).map(bytes)
    text = st.text(st.characters(min_codepoint=0xA0), min_size=1, max_size=20).map(str.encode)

    @EXAMPLES
    @given(st.one_of(header_bytes.filter(_not_utf8), text))
    def check(token: bytes) -> None:
        if token.strip() == daemon.trade_token.encode():
            return
        status, error = call(daemon, "GET", "/v1/swaps", {"Authorization": b"Bearer " + token})
        assert (status, error["field"]) == (401, "Authorization"), error  # type: ignore[index]

    check()


async def test_a_nul_in_a_header_is_a_quiet_400(daemon: Daemon) -> None:
    host, port = daemon.url.removeprefix("http://").split(":")
    for header in (b"X-Probe: a\0b", b"Authorization: Bearer \0", b"Last-Event-ID: 1\0"):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET /v1/swaps HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
            assert sock.recv(64).split(b" ")[1] == b"400"
    # The fixture's teardown checks the log: no traceback, nothing at error level.


async def test_deep_json_is_refused_by_depth(daemon: Daemon) -> None:
    trade = {**bearer(daemon.trade_token), "Content-Type": "application/json"}
    for body in (
        b"[" * (MAX_BODY - 1024),
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b"[" * 33 + b"]" * 33,
    ):
        for path in ("/v1/swaps", "/v1/offers/accept", "/v1/swaps/live/acceptance", "/v1/swaps/live/cancel"):
            status, error = call(daemon, "POST", path, trade, body)
            assert (status, error["field"]) == (400, "body"), error  # type: ignore[index]
            assert "deeper than 32" in error["error"]  # type: ignore[index]
    # Brackets inside a string do not nest.
    shallow = {"counterparty": "[" * 100, "give": {"chain": "{" * 100}, "get": []}
    status, error = call(daemon, "POST", "/v1/swaps", trade, json.dumps(shallow).encode())
    assert status == 400 and error["field"] != "body", error  # type: ignore[index]
    status, _ = call(daemon, "GET", "/v1/health")
    assert status == 200


async def test_cancelling_an_ended_swap_is_a_conflict(daemon: Daemon) -> None:
    trade = bearer(daemon.trade_token)
    # No body at all is a cancel without a reason, whatever the Content-Type says.
    status, error = call(daemon, "POST", "/v1/swaps/ended/cancel", trade)
    assert (status, error["field"]) == (409, "id"), error  # type: ignore[index]
    assert "completed" in error["error"]  # type: ignore[index]
    json_body = {**trade, "Content-Type": "application/json"}
    status, error = call(daemon, "POST", "/v1/swaps/ended/cancel", json_body, b'{"reason": "late"}')
    assert (status, error["field"]) == (409, "id"), error  # type: ignore[index]
    status, error = call(daemon, "POST", "/v1/swaps/nope/cancel", trade)
    assert (status, error["field"]) == (404, "id"), error  # type: ignore[index]
    status, error = call(daemon, "POST", "/v1/swaps/ended/cancel", json_body, b'{"why": "late"}')
    assert (status, error["field"]) == (400, "why"), error  # type: ignore[index]


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A database of its own on the PostgreSQL server, dropped after."""
    async with fresh_database("settlerd_api") as url:
        yield url


@pytest.mark.postgres
async def test_filters_of_any_text_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    """PostgreSQL refuses some text SQLite keeps (a NUL): no filter passes on anything but its pattern."""
    async with running_daemon(tmp_path, "hostile-pg", store_url=pg_url) as daemon:
        read = bearer(daemon.read_token_file.read_text().strip())

        @EXAMPLES
        @given(st.one_of(st.text(max_size=70), st.just("desk\x00b"), st.from_regex(NODE_ID, fullmatch=True)))
        def check(name: str) -> None:
            status, reply = call(daemon, "GET", f"/v1/swaps?counterparty={quote(name)}", read)
            if re.fullmatch(NODE_ID, name):
                assert status == 200, reply
            else:
                assert (status, reply["field"]) == (400, "counterparty"), reply  # type: ignore[index]

        check()
        assert "Traceback" not in daemon.log(), daemon.log()
