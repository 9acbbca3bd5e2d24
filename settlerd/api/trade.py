"""Trade capture over HTTP (scope ``trade``): create an offer, accept one, register an acceptance, cancel.

Each handler parses and checks its input, then hands it to the engine's capture; any refusal comes back
as a 4xx JSON error naming the field.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from settlerd.engine import Capture, CaptureError, DocumentError, LegRequest, OfferRequest
from settlerd.engine.documents import AcceptanceDoc, OfferDoc

from . import params
from .body import has_body, json_body
from .context import STORE
from .errors import ApiError
from .swaps import document_of

CAPTURE: web.AppKey[Capture] = web.AppKey("capture", Capture)
MAX_AMOUNT_DIGITS = 78  # 2**256 has 78 digits: no chain's amounts are larger
MAX_TEXT = 128  # chain, asset and counterparty names
MAX_REASON = 500


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(400, "must be a JSON object", field)
    return value


def _text(body: dict[str, Any], key: str, field: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_TEXT:
        raise ApiError(400, f"must be a non-empty string of at most {MAX_TEXT} characters", field)
    return value


def _leg(body: dict[str, Any], key: str) -> LegRequest:
    leg = _object(body.get(key), key)
    unknown = sorted(set(leg) - {"chain", "asset", "amount"})
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r}", f"{key}.{unknown[0]}")
    amount = leg.get("amount")
    if (
        not isinstance(amount, str)
        or not params.DIGITS.fullmatch(amount)
        or len(amount) > MAX_AMOUNT_DIGITS
        or int(amount) <= 0
    ):
        raise ApiError(400, "must be a positive whole number of base units, as a string", f"{key}.amount")
    return LegRequest(_text(leg, "chain", f"{key}.chain"), _text(leg, "asset", f"{key}.asset"), int(amount))


def _document(model: type[BaseModel], value: Any) -> Any:
    """Refuse with 400 a document that does not have the documented shape; the engine then checks the
    rest (signature, counterparty, terms), and what it refuses is well formed: 422."""
    if not isinstance(value, dict):
        raise ApiError(400, "must be a JSON object", "body")
    try:
        model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ApiError(400, first["msg"], ".".join(str(p) for p in first["loc"]) or "body") from None
    return value


def _refusal(exc: CaptureError | DocumentError) -> ApiError:
    if isinstance(exc, DocumentError):
        return ApiError(422, exc.message, exc.field)
    return ApiError(exc.status, str(exc), exc.field)


async def create_swap(request: web.Request) -> web.Response:
    body = _object(await json_body(request), "body")
    unknown = sorted(set(body) - {"counterparty", "give", "get"})
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r}", unknown[0])
    offer_request = OfferRequest(
        _text(body, "counterparty", "counterparty"), _leg(body, "give"), _leg(body, "get")
    )
    try:
        offer = await request.app[CAPTURE].create_offer(offer_request)
    except (CaptureError, DocumentError) as exc:
        raise _refusal(exc) from None
    return web.json_response(offer, status=201)


async def accept_offer(request: web.Request) -> web.Response:
    offer = _document(OfferDoc, await json_body(request))
    try:
        acceptance = await request.app[CAPTURE].accept_offer(offer)
    except (CaptureError, DocumentError) as exc:
        raise _refusal(exc) from None
    return web.json_response(acceptance, status=201)


async def _status(request: web.Request, swap_id: str) -> web.Response:
    store = request.app[STORE]
    swap = await store.get_swap(swap_id)
    if swap is None:
        raise ApiError(404, f"no swap {swap_id}", "id")
    return web.json_response(await document_of(store, swap))


async def register_acceptance(request: web.Request) -> web.Response:
    swap_id = params.swap_id(request.match_info["id"])
    acceptance = _document(AcceptanceDoc, await json_body(request))
    try:
        await request.app[CAPTURE].register_acceptance(swap_id, acceptance)
    except (CaptureError, DocumentError) as exc:
        raise _refusal(exc) from None
    return await _status(request, swap_id)


async def cancel_swap(request: web.Request) -> web.Response:
    swap_id = params.swap_id(request.match_info["id"])
    # The body is optional: no body (whatever its Content-Type) is a cancel without a reason.
    body = _object(await json_body(request), "body") if has_body(request) else {}
    unknown = sorted(set(body) - {"reason"})
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r}", unknown[0])
    reason = body.get("reason", "cancelled by the desk")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise ApiError(400, f"must be a string of at most {MAX_REASON} characters", "reason")
    try:
        await request.app[CAPTURE].cancel(swap_id, reason)
    except CaptureError as exc:
        if exc.status == 404:
            raise await _not_live(request, swap_id) from None
        raise _refusal(exc) from None
    return await _status(request, swap_id)


async def _not_live(request: web.Request, swap_id: str) -> ApiError:
    """The engine knows only live swaps: one it does not know may still be stored, having ended."""
    swap = await request.app[STORE].get_swap(swap_id)
    if swap is None:
        return ApiError(404, f"no swap {swap_id}", "id")
    return ApiError(409, f"swap {swap_id} is {swap.status}, no longer live: nothing to cancel", "id")


async def wallets(request: web.Request) -> web.Response:
    """Where to fund this daemon on each chain, and what it can spend there (scope ``admin``)."""
    adapters = request.app[CAPTURE].adapters
    out = {}
    for name, adapter in adapters.items():
        out[name] = {
            "address": await adapter.receive_address(),
            "asset": adapter.native_asset,
            "spendable": str(await adapter.spendable(adapter.native_asset)),
        }
    return web.json_response({"wallets": out})
