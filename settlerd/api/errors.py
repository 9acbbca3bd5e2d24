"""Every error the API returns is JSON: ``{"error": what is wrong, "field": the input it is about}``.

Unexpected exceptions become a 500 with no details (those go to the log), never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler, Middleware

log = logging.getLogger("settlerd.api")
SERVER_LOG = logging.getLogger("aiohttp.server")  # where aiohttp reports requests it could not parse


class ApiError(Exception):
    """A request the API refuses; ``field`` names the parameter, header or body part at fault."""

    def __init__(
        self,
        status: int,
        error: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.field = field
        self.headers = dict(headers or {})


def error_response(
    status: int, error: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response({"error": error, "field": field}, status=status, headers=headers)


# Headers of aiohttp's own HTTP errors worth keeping on the JSON replacement.
_KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.error, exc.field, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kept = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
        if isinstance(exc, web.HTTPRequestEntityTooLarge):
            return error_response(exc.status, exc.text or exc.reason, "body", kept)
        if isinstance(exc, web.HTTPNotFound):
            return error_response(exc.status, f"no such resource: {request.path}", None, kept)
        if isinstance(exc, web.HTTPMethodNotAllowed):
            return error_response(
                exc.status, f"{request.method} is not allowed on {request.path}", None, kept
            )
        return error_response(exc.status, exc.reason, None, kept)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("api: %s %s failed", request.method, request.path)
        return error_response(500, "internal error; the daemon log has the details")


def body_limit(max_bytes: int) -> Middleware:
    """Refuse a declared oversized body before any handler runs; aiohttp's own limit covers the rest."""

    @web.middleware
    async def refuse_large(request: web.Request, handler: Handler) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > max_bytes:
            raise ApiError(413, f"request body of {length} bytes exceeds the limit of {max_bytes}", "body")
        return await handler(request)

    return refuse_large


class QuietBadRequests(logging.Filter):
    """A request aiohttp cannot parse (a NUL in a header, a bad chunk) is the client's error, answered 400.

    aiohttp logs each with a traceback at error level, so anyone, without a token, could fill the log
    with alarms; this makes it one debug line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError) or exc.code >= 500:
            return True
        record.msg, record.args = f"{record.getMessage()}: {exc.code} {exc.message}", None
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.exc_info = record.exc_text = None
        return SERVER_LOG.isEnabledFor(logging.DEBUG)


def quiet_bad_requests() -> None:
    if not any(isinstance(f, QuietBadRequests) for f in SERVER_LOG.filters):
        SERVER_LOG.addFilter(QuietBadRequests())
