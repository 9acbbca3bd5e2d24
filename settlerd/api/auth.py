"""Bearer tokens with scopes ``read`` < ``trade`` < ``admin``, configured as SHA-256 hashes.

Only the hash of a token is ever held; a presented token is hashed and compared in constant time with
every configured hash, so neither the timing nor the order of the list tells anything about a token.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Handler

from settlerd.config import ApiToken

from .errors import ApiError

Scope = Literal["read", "trade", "admin"]
SCOPE_RANK: dict[str, int] = {"read": 0, "trade": 1, "admin": 2}
REALM = "settlerd"

# Which scope each route needs; a route missing from it (health, the OpenAPI document) needs none.
ROUTE_SCOPES: web.AppKey[dict[web.AbstractRoute, Scope]] = web.AppKey("route_scopes", dict)
TOKENS: web.AppKey[list[ApiToken]] = web.AppKey("tokens", list)
# The name of the token a request was let in with (routes that need a scope only).
TOKEN_NAME: web.RequestKey[str] = web.RequestKey("token_name", str)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def find_token(presented: str, tokens: Sequence[ApiToken]) -> ApiToken | None:
    digest = token_hash(presented)
    found = None
    for candidate in tokens:
        # No early exit: every hash is compared, whichever matches.
        if hmac.compare_digest(digest, candidate.sha256):
            found = candidate
    return found


def allows(granted: str, required: str) -> bool:
    return SCOPE_RANK[granted] >= SCOPE_RANK[required]


def _challenge(error: str | None = None, scope: str | None = None) -> dict[str, str]:
    value = f'Bearer realm="{REALM}"'
    if error is not None:
        value += f', error="{error}"'
    if scope is not None:
        value += f', scope="{scope}"'
    return {"WWW-Authenticate": value}


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    required = request.app[ROUTE_SCOPES].get(request.match_info.route)
    if required is None:
        return await handler(request)
    header = request.headers.get("Authorization")
    if header is None:
        raise ApiError(401, "a bearer token is required", "Authorization", _challenge())
    scheme, _, presented = header.partition(" ")
    presented = presented.strip()
    # Tokens are printable ASCII; other bytes (aiohttp passes non-UTF-8 ones as surrogates) cannot match.
    if scheme.lower() != "bearer" or not presented or not (presented.isascii() and presented.isprintable()):
        raise ApiError(
            401,
            "the Authorization header must be 'Bearer TOKEN'",
            "Authorization",
            _challenge("invalid_request"),
        )
    configured = request.app[TOKENS]
    token = find_token(presented, configured)
    if token is None:
        raise ApiError(401, "the bearer token is not valid", "Authorization", _challenge("invalid_token"))
    if not allows(token.scope, required):
        raise ApiError(
            403,
            f"this needs a token with scope {required!r}; token {token.name!r} has {token.scope!r}",
            "Authorization",
            _challenge("insufficient_scope", required),
        )
    request[TOKEN_NAME] = token.name
    return await handler(request)
