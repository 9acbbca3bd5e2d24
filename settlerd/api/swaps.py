"""Swap status: one swap (with an ETag for cheap polling) and filtered, cursor-paginated lists."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from settlerd.status.document import status_document
from settlerd.store import Store, Swap

from . import params
from .context import STORE
from .errors import ApiError


def _body(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def etag_of(body: bytes) -> str:
    # The document itself is the version: leg confirmations change it without touching the swap row.
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison, as If-None-Match uses."""
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


async def document_of(store: Store, swap: Swap) -> dict[str, Any]:
    return status_document(swap, await store.legs_of(swap.id))


async def get_swap(request: web.Request) -> web.StreamResponse:
    params.reject_unknown(request.query, ())
    swap_id = params.swap_id(request.match_info["id"])
    store = request.app[STORE]
    swap = await store.get_swap(swap_id)
    if swap is None:
        raise ApiError(404, f"no swap {swap_id}", "id")
    body = _body(await document_of(store, swap))
    etag = etag_of(body)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and _matches(if_none_match, etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", headers=headers)


async def list_swaps(request: web.Request) -> web.Response:
    query = request.query
    params.reject_unknown(query, ("status", "counterparty", "created_since", "cursor", "limit"))
    limit = params.limit(params.single(query, "limit"))
    store = request.app[STORE]
    page = await store.list_swaps(
        status=params.statuses(params.single(query, "status")),
        counterparty=params.counterparty(params.single(query, "counterparty")),
        created_since=params.created_since(params.single(query, "created_since")),
        after=params.decode_cursor(params.single(query, "cursor")),
        limit=limit + 1,  # one more than asked says whether another page exists
    )
    shown = page[:limit]
    next_cursor = params.encode_cursor(shown[-1].id) if len(page) > limit else None
    legs = await store.legs_of_many([swap.id for swap in shown])  # one query for the page, not one a row
    documents = [status_document(swap, legs[swap.id]) for swap in shown]
    return web.json_response({"swaps": documents, "next_cursor": next_cursor})
