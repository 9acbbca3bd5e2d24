"""Query parameters and headers, checked one by one; each refusal names the field and the problem.

Each check accepts exactly what the OpenAPI document describes (the patterns below are in it too), so
a request the document calls valid is never refused with 400, and one it calls invalid always is.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Collection
from datetime import UTC, datetime

from multidict import MultiMapping

from settlerd.engine.documents import NODE_ID as NODE_ID_PATTERN
from settlerd.swap import Status

from .errors import ApiError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200  # each listed swap costs a legs query: keep one page cheap
SWAP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"  # the store keeps ids of up to 64 chars
# ASCII digits only: str.isdigit() also accepts "²" and other Unicode digits that int() refuses.
DIGITS_PATTERN = r"^[0-9]+$"
# Event sequence numbers are SQLite/PostgreSQL 64-bit signed integers: none is larger.
MAX_SEQ = 2**63 - 1
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
# A cursor is "v1:" and the last id of the page, base64url without padding: the prefix encodes to "djE6"
# exactly, and no unpadded base64 text is one character past a multiple of four.
_CURSOR_PREFIX = "v1:"
_CURSOR_HEAD = base64.urlsafe_b64encode(_CURSOR_PREFIX.encode()).decode()
CURSOR_PATTERN = rf"^{_CURSOR_HEAD}(?:[A-Za-z0-9_-]{{4}})*[A-Za-z0-9_-]{{2,4}}$"
CURSOR_MAX_LENGTH = 90  # the encoding of the prefix and the longest id
STATUSES = tuple(str(status) for status in Status)

SWAP_ID = re.compile(SWAP_ID_PATTERN)
NODE_ID = re.compile(NODE_ID_PATTERN)
DIGITS = re.compile(DIGITS_PATTERN)
_RFC3339 = re.compile(RFC3339_PATTERN)
_CURSOR = re.compile(CURSOR_PATTERN)


def reject_unknown(query: MultiMapping[str], allowed: Collection[str]) -> None:
    for name in query:
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise ApiError(400, f"unknown query parameter {name!r} (known: {known})", name)


def single(query: MultiMapping[str], name: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise ApiError(400, f"{name} given {len(values)} times; give it once", name)
    return values[0] if values else None


def swap_id(value: str) -> str:
    # fullmatch: a "$" alone would let a final newline through.
    if not SWAP_ID.fullmatch(value):
        raise ApiError(400, "not a swap id: letters, digits and '_.:-', at most 64 characters", "id")
    return value


def limit(value: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if value is None:
        return default
    if not DIGITS.fullmatch(value) or not 1 <= _bounded_int(value, maximum) <= maximum:
        raise ApiError(400, f"must be a whole number from 1 to {maximum}, got {value!r}", "limit")
    return int(value)


def sequence(value: str | None, field: str) -> int:
    """An event sequence number (``after``, ``Last-Event-ID``); absent means from the start.

    One past the largest sequence number there can be is as good as that largest: nothing comes after."""
    if value is None:
        return 0
    if not DIGITS.fullmatch(value):
        raise ApiError(400, f"must be an event sequence number (a whole number), got {value!r}", field)
    return min(_bounded_int(value, MAX_SEQ), MAX_SEQ)


def _bounded_int(digits: str, maximum: int) -> int:
    """``int(digits)``, or ``maximum + 1`` for a number too long to be in range (and for int() to take)."""
    stripped = digits.lstrip("0") or "0"
    return int(stripped) if len(stripped) <= len(str(maximum)) else maximum + 1


def statuses(value: str | None) -> list[str] | None:
    if value is None:
        return None
    wanted = value.split(",")
    unknown = [part for part in wanted if part not in STATUSES]
    if unknown:
        raise ApiError(
            400,
            f"unknown status {', '.join(map(repr, unknown))}; one or more of "
            f"{', '.join(sorted(STATUSES))}, separated by commas without spaces",
            "status",
        )
    return wanted


def counterparty(value: str | None) -> str | None:
    # A node id, as every stored counterparty is; nothing else (a NUL, say) reaches a PostgreSQL query.
    if value is not None and not NODE_ID.fullmatch(value):
        raise ApiError(
            400, "must be a counterparty's node id: letters, digits and '_.-', at most 63", "counterparty"
        )
    return value


def created_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        if not _RFC3339.fullmatch(value):
            raise ValueError
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400,
            f"not an RFC 3339 timestamp with a time zone, e.g. 2026-01-31T12:00:00Z: {value!r}",
            "created_since",
        ) from None
    return parsed.astimezone(UTC)


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode((_CURSOR_PREFIX + last_id).encode()).decode().rstrip("=")


def decode_cursor(value: str | None) -> str | None:
    """The id the next page starts after; opaque to clients, who pass back ``next_cursor`` as given.

    A well-formed cursor this API never returned names no swap: its page is empty."""
    if value is None:
        return None
    if len(value) > CURSOR_MAX_LENGTH or not _CURSOR.fullmatch(value):
        raise ApiError(400, "not a cursor this API returned; pass next_cursor back unchanged", "cursor")
    text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode(errors="replace")
    last_id = text.removeprefix(_CURSOR_PREFIX)
    # No swap has the empty id; passing the text on instead could put a NUL in a PostgreSQL query.
    return last_id if SWAP_ID.fullmatch(last_id) else ""
