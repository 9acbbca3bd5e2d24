"""JSON request bodies, refused before they can hurt: too deep to parse safely, or text the store cannot keep.

``json.loads`` recurses once per nesting level on the C stack, and the EVM libraries raise Python's
recursion limit, so a body of ``[[[[...`` within ``api.max_body_bytes`` can overflow the stack and kill
the process. The nesting depth is therefore counted on the raw bytes first, without recursion.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from itertools import accumulate
from typing import Any

from aiohttp import web

from .errors import ApiError

# The deepest document the API takes (offers and acceptances nest four levels); far below any stack limit.
MAX_JSON_DEPTH = 32
# An integer written with a fraction or exponent this long or longer stays a float: no field takes it.
MAX_INTEGER_DIGITS = 80
# A complete JSON string: brackets inside one do not nest. Possessive, so it never backtracks.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_OPENING = frozenset(b"[{")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def nesting_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in ``raw`` (JSON text), counted without recursion.

    Brackets in an unterminated string count too: that body is not JSON anyway."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if len(brackets) <= MAX_JSON_DEPTH:
        return len(brackets)
    return max(accumulate(1 if c in _OPENING else -1 for c in brackets))


def has_body(request: web.Request) -> bool:
    return request.body_exists and request.content_length != 0


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _number(text: str) -> int | float:
    """JSON Schema counts 2.0 and 2e3 as integers; so does the API (the documents' parser is strict)."""
    value = Decimal(text)
    if value == value.to_integral_value() and value.adjusted() < MAX_INTEGER_DIGITS:
        return int(value)
    return float(text)


async def json_body(request: web.Request) -> Any:
    """The request's JSON body, or an ApiError naming what is wrong with it."""
    if request.content_type != "application/json":
        raise ApiError(415, "send the body as application/json", "Content-Type")
    raw = await request.read()
    if nesting_depth(raw) > MAX_JSON_DEPTH:
        raise ApiError(400, f"the body nests deeper than {MAX_JSON_DEPTH} levels", "body")
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_number)
    except ValueError as exc:  # also a number longer than int() takes, and a bad encoding
        raise ApiError(400, f"the body is not valid JSON: {exc}", "body") from None
    try:
        # A lone surrogate (an unpaired "\ud800" escape) parses but is not text any store can keep.
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise ApiError(400, "a string in the body has an unpaired surrogate", "body") from None
    return value
