"""A read token cannot take the daemon down by holding event streams open: streams past a token's share
get 429, past the total 503, and everything else (requests, trade capture, a swap's progress on the
streams already open) goes on. A configuration whose caps do not fit the open files limit is refused."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from settlerd.api.events import KEEPALIVE_S
from settlerd.api.streams import DESCRIPTOR_RESERVE
from settlerd.store import Store

from .daemon import Daemon, running_daemon
from .swaps import HAPPY_PATH, advance, create_swap
from .test_event_stream import sse_events

PER_TOKEN, TOTAL = 4, 6
ATTEMPTS = 40  # streams a read token tries to open: ten times its share
WAIT_S = 20.0  # an upper bound for a stalled stream, not a timing assertion
RETRIES, RETRY_S = 40, 0.25  # ten seconds in all: less than one keepalive interval


@contextlib.asynccontextmanager
async def stream(
    session: aiohttp.ClientSession, daemon: Daemon, token: str, swap_id: str, last_event_id: int = 0
) -> AsyncIterator[aiohttp.ClientResponse]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = str(last_event_id)
    async with session.get(f"{daemon.url}/v1/swaps/{swap_id}/events", headers=headers) as response:
        yield response


async def test_streams_past_the_caps_are_refused_and_the_rest_goes_on(tmp_path: Path) -> None:
    api = f"max_streams_per_token = {PER_TOKEN}\nmax_streams = {TOTAL}"
    async with (
        running_daemon(tmp_path, "streams", trading=True, api=api) as daemon,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
        contextlib.AsyncExitStack() as held,
    ):
        store = await Store.open(f"sqlite:///{daemon.db}")
        held.push_async_callback(store.close)
        await create_swap(store, "watched")
        await create_swap(store, "other")
        read = daemon.read_token_file.read_text().strip()

        opened = [await held.enter_async_context(stream(session, daemon, read, "watched"))]
        refused = []
        for _ in range(ATTEMPTS - 1):
            response = await held.enter_async_context(stream(session, daemon, read, "other"))
            (opened if response.status == 200 else refused).append(response)
        assert len(opened) == PER_TOKEN
        assert {r.status for r in refused} == {429} and len(refused) == ATTEMPTS - PER_TOKEN
        assert all(r.headers["Retry-After"].isdigit() for r in refused)
        assert (await refused[0].json())["field"] == "Authorization"
        for _ in range(TOTAL - PER_TOKEN):
            response = await held.enter_async_context(stream(session, daemon, daemon.trade_token, "other"))
            assert response.status == 200
        async with stream(session, daemon, daemon.trade_token, "other") as full:
            assert full.status == 503 and full.headers["Retry-After"].isdigit()

        # With every stream taken, requests and trade capture are still answered.
        auth = {"Authorization": f"Bearer {daemon.trade_token}"}
        async with session.get(daemon.url + "/v1/swaps", headers=auth) as r:
            assert r.status == 200 and len((await r.json())["swaps"]) == 2
        order = {"counterparty": "desk-b", "give": _leg("bitcoin"), "get": _leg("evm")}
        async with session.post(daemon.url + "/v1/swaps", json=order, headers=auth) as r:
            # Refused as it should be (this daemon lists no counterparty), not left waiting.
            assert r.status == 403 and (await r.json())["field"] == "counterparty"

        # The swap's progress reaches its open stream, which ends once the swap is terminal.
        events = sse_events(opened[0])
        _, first = await asyncio.wait_for(anext(events), WAIT_S)
        assert first["kind"] == "swap_created"
        last = [await advance(store, "watched", step) for step in range(len(HAPPY_PATH))][-1]
        received = [await asyncio.wait_for(anext(events), WAIT_S) for _ in HAPPY_PATH]
        assert received[-1][0] == last.seq and received[-1][1]["status"] == "completed"
        assert await asyncio.wait_for(opened[0].content.read(), WAIT_S) == b""  # the stream ended

        # Its slot is free again; a terminal swap with nothing left to send is a 204, not a stream.
        async with stream(session, daemon, read, "other") as again:
            assert again.status == 200
        async with stream(session, daemon, read, "watched", last.seq) as done:
            assert done.status == 204

        # Streams whose client went away give their slots back within seconds, before any keepalive.
        for response in opened[1:]:
            response.close()
        started = time.monotonic()
        for _ in range(PER_TOKEN):
            await open_within(held, session, daemon, read, "other")
        assert time.monotonic() - started < KEEPALIVE_S
        assert "Traceback" not in daemon.log()


async def open_within(
    held: contextlib.AsyncExitStack, session: aiohttp.ClientSession, daemon: Daemon, token: str, swap_id: str
) -> None:
    for _ in range(RETRIES):
        response = await held.enter_async_context(stream(session, daemon, token, swap_id))
        if response.status == 200:
            return
        assert response.status == 429
        await asyncio.sleep(RETRY_S)
    raise AssertionError(f"no stream slot came back within {RETRIES * RETRY_S:.0f}s")


def _leg(chain: str) -> dict[str, str]:
    return {"chain": chain, "asset": "X", "amount": "1000"}


async def test_caps_that_do_not_fit_the_open_files_limit_are_refused(tmp_path: Path) -> None:
    limit = 600
    config = tmp_path / "settlerd.toml"
    config.write_text(
        f'node_id = "fd-check"\n[store]\nurl = "sqlite:///{tmp_path / "db.sqlite3"}"\n'
        f"[api]\nport = 0\nmax_streams = {limit - DESCRIPTOR_RESERVE + 1}\n[mqtt]\nenabled = false\n"
    )

    def lower_the_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "settlerd", "run", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, preexec_fn=lower_the_limit,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), WAIT_S)
    lines = err.decode().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"{config}: api.max_streams: ")
    assert f"lower api.max_streams to {limit - DESCRIPTOR_RESERVE}" in lines[0]
    assert not (tmp_path / "db.sqlite3").exists()
