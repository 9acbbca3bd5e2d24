"""The SSE stream: replays the swap's events after Last-Event-ID, then follows new ones live."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from settlerd.store import Store

from .conftest import TOKENS, Api
from .swaps import HAPPY_PATH, advance, create_swap

WAIT_S = 20.0  # an upper bound for a stalled stream, not a timing assertion


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    event_id: int | None = None
    data: list[str] = []
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line == "":
            if event_id is not None:
                yield event_id, json.loads("\n".join(data))
            event_id, data = None, []
        elif line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("data: "):
            data.append(line[6:])


async def test_stream_resumes_after_last_event_id_and_follows_live(api: Api, store: Store) -> None:
    await create_swap(store, "streamed")
    await create_swap(store, "noise")
    first = await advance(store, "streamed", 0)
    await advance(store, "noise", 0)
    second = await advance(store, "streamed", 1)

    headers = {
        "Authorization": f"Bearer {TOKENS['read']}",
        "Accept": "text/event-stream",
        "Last-Event-ID": str(first.seq),
    }
    async with api.session.get(api.base + "/v1/swaps/streamed/events", headers=headers) as response:
        assert response.status == 200
        media = response.headers["Content-Type"]
        api.checker.check("GET", "/v1/swaps/streamed/events", 200, media, "")
        stream = sse_events(response)
        seq, event = await asyncio.wait_for(anext(stream), WAIT_S)
        assert seq == second.seq == event["seq"] and event["status"] == "leg1_locking"

        live = [await advance(store, "streamed", step) for step in range(2, len(HAPPY_PATH))]
        await advance(store, "noise", 1)
        received = []
        for _ in live:
            seq, event = await asyncio.wait_for(anext(stream), WAIT_S)
            assert seq == event["seq"] and event["swap_id"] == "streamed"
            received.append(seq)
        assert received == [e.seq for e in live]
        assert event["status"] == "completed"


async def test_stream_refuses_a_bad_last_event_id(api: Api, store: Store) -> None:
    await create_swap(store, "bad-resume")
    reply = await api.get(
        "/v1/swaps/bad-resume/events", headers={"Accept": "text/event-stream", "Last-Event-ID": "seven"}
    )
    assert reply.status == 400 and reply.body["field"] == "Last-Event-ID"
