"""A swap's timeline: JSON pages, or a live Server-Sent Events stream resuming from ``Last-Event-ID``."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from settlerd.status_doc import event_document

from . import params
from .context import FEED, STORE
from .errors import ApiError

SSE_TYPE = "text/event-stream"
SSE_BATCH = 500
# A comment line this often keeps proxies from closing an idle stream and shows a dead client.
KEEPALIVE_S = 15.0
RECONNECT_MS = 2000  # what EventSource clients wait before reconnecting


async def swap_events(request: web.Request) -> web.StreamResponse:
    swap_id = params.swap_id(request.match_info["id"])
    store = request.app[STORE]
    if await store.get_swap(swap_id) is None:
        raise ApiError(404, f"no swap {swap_id}", "id")
    if SSE_TYPE in request.headers.get("Accept", ""):
        params.reject_unknown(request.query, ())
        after = params.sequence(request.headers.get("Last-Event-ID"), "Last-Event-ID")
        return await _stream(request, swap_id, after)
    params.reject_unknown(request.query, ("after", "limit"))
    after = params.sequence(params.single(request.query, "after"), "after")
    limit = params.limit(params.single(request.query, "limit"), default=params.MAX_LIMIT)
    events = await store.events(after_seq=after, swap_id=swap_id, limit=limit)
    next_after = events[-1].seq if len(events) == limit else None
    return web.json_response(
        {"swap_id": swap_id, "events": [event_document(e) for e in events], "next_after": next_after}
    )


async def _stream(request: web.Request, swap_id: str, after: int) -> web.StreamResponse:
    store, feed = request.app[STORE], request.app[FEED]
    response = web.StreamResponse(
        headers={"Content-Type": SSE_TYPE, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    await response.write(f"retry: {RECONNECT_MS}\n\n".encode())
    last = after
    try:
        while not feed.closing:
            changed = feed.changed()
            events = await store.events(after_seq=last, swap_id=swap_id, limit=SSE_BATCH)
            for event in events:
                data = json.dumps(event_document(event), separators=(",", ":"))
                await response.write(f"id: {event.seq}\ndata: {data}\n\n".encode())
                last = event.seq
            if events:
                continue
            try:
                await asyncio.wait_for(changed.wait(), KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
    except ConnectionError:
        pass  # the client went away; nothing to clean up
    return response
