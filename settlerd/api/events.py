"""A swap's timeline: JSON pages, or a live Server-Sent Events stream resuming from ``Last-Event-ID``."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from settlerd.status.document import event_document
from settlerd.swap import TERMINAL, Status, is_terminal

from . import params
from .auth import TOKEN_NAME
from .context import FEED, STORE, STREAMS
from .errors import ApiError

SSE_TYPE = "text/event-stream"
SSE_BATCH = 500
# A comment line this often keeps proxies from closing an idle stream and shows a dead client.
KEEPALIVE_S = 15.0
# How soon a stream whose client went away is noticed, so that it gives back its slot (api.max_streams).
CLIENT_CHECK_S = 1.0
RECONNECT_MS = 2000  # what EventSource clients wait before reconnecting
_TERMINAL = {status.value for status in TERMINAL}


async def swap_events(request: web.Request) -> web.StreamResponse:
    swap_id = params.swap_id(request.match_info["id"])
    params.reject_unknown(request.query, ("after", "limit"))
    after = params.sequence(params.single(request.query, "after"), "after")
    limit = params.limit(params.single(request.query, "limit"), default=params.MAX_LIMIT)
    # Checked on pages too, so that a bad one is refused whatever the Accept header says.
    last_event_id = request.headers.get("Last-Event-ID")
    if last_event_id is not None:
        # Empty is what EventSource sends before it has seen an id: from the start (or `after`).
        last_event_id = last_event_id.strip() or None
    resume = params.sequence(last_event_id, "Last-Event-ID") if last_event_id is not None else None
    store = request.app[STORE]
    if await store.get_swap(swap_id) is None:
        raise ApiError(404, f"no swap {swap_id}", "id")
    if SSE_TYPE in request.headers.get("Accept", ""):
        return await _stream(request, swap_id, after if resume is None else resume)
    events = await store.events(after_seq=after, swap_id=swap_id, limit=limit)
    next_after = events[-1].seq if len(events) == limit else None
    return web.json_response(
        {"swap_id": swap_id, "events": [event_document(e) for e in events], "next_after": next_after}
    )


async def _stream(request: web.Request, swap_id: str, after: int) -> web.StreamResponse:
    """Every event after ``after``, live; the stream ends once the swap is terminal and all is sent.

    The backlog comes from the store, what follows from the feed's fan-out (no query per stream per
    change). A stream holds one of its token's slots (``api.max_streams_per_token``) until it ends or
    its client goes away."""
    store, feed = request.app[STORE], request.app[FEED]
    response: web.StreamResponse | None = None
    last = after
    with feed.subscribe(swap_id) as subscription, contextlib.ExitStack() as slot:
        catch_up, ended = True, False
        while not feed.closing:
            if catch_up or subscription.lagged:
                subscription.lagged = False
                subscription.take()  # what the read below returns, or older
                # The status is read before the events: once it is terminal, the events read next
                # include every event up to the one that made it so.
                swap = await store.get_swap(swap_id)
                ended = swap is None or is_terminal(Status(swap.status))
                events = await store.events(after_seq=last, swap_id=swap_id, limit=SSE_BATCH)
                catch_up = len(events) == SSE_BATCH
            else:
                events = [e for e in subscription.take() if e.seq > last]
                ended = ended or any(e.status in _TERMINAL for e in events)
            if response is None:
                if ended and not events:
                    # Nothing will ever come: 204 tells EventSource clients to stop reconnecting.
                    return web.Response(status=204)
                slot.enter_context(request.app[STREAMS].hold(request[TOKEN_NAME]))
                response = await _open(request)
            try:
                for event in events:
                    data = json.dumps(event_document(event), separators=(",", ":"))
                    await response.write(f"id: {event.seq}\ndata: {data}\n\n".encode())
                    last = event.seq
                if catch_up or subscription.lagged:
                    continue
                if ended or not await _wait(request, response, subscription.changed):
                    break
            except ConnectionError:
                break  # the client went away; nothing to clean up
    return response if response is not None else web.Response(status=204)


async def _wait(request: web.Request, response: web.StreamResponse, changed: asyncio.Event) -> bool:
    """Until the log changes, with a keepalive now and then; False once the client has gone away."""
    waited = 0.0
    while request.transport is not None:  # aiohttp drops it when the connection is lost
        try:
            await asyncio.wait_for(changed.wait(), CLIENT_CHECK_S)
            return True
        except TimeoutError:
            waited += CLIENT_CHECK_S
        if waited >= KEEPALIVE_S:
            await response.write(b": keepalive\n\n")
            waited = 0.0
    return False


async def _open(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": SSE_TYPE, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    await response.write(f"retry: {RECONNECT_MS}\n\n".encode())
    return response
