"""Query parameters and headers, checked one by one; each refusal names the field and the problem."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection
from datetime import UTC, datetime

from multidict import MultiMapping

from settlerd.swap import Status

from .errors import ApiError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200  # each listed swap costs a legs query: keep one page cheap
SWAP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")  # the store keeps ids of up to 64 chars
_CURSOR_PREFIX = "v1:"
_STATUSES = frozenset(str(status) for status in Status)


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
    if not SWAP_ID.match(value):
        raise ApiError(400, "not a swap id: letters, digits and '_.:-', at most 64 characters", "id")
    return value


def limit(value: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if value is None:
        return default
    if not value.isdigit():
        raise ApiError(400, f"must be a whole number from 1 to {maximum}, got {value!r}", "limit")
    number = int(value)
    if not 1 <= number <= maximum:
        raise ApiError(400, f"must be from 1 to {maximum}, got {number}", "limit")
    return number


def sequence(value: str | None, field: str) -> int:
    """An event sequence number (``after``, ``Last-Event-ID``); absent means from the start."""
    if value is None or value.strip() == "":
        return 0
    if not value.strip().isdigit():
        raise ApiError(400, f"must be an event sequence number (a whole number), got {value!r}", field)
    return int(value)


def statuses(value: str | None) -> list[str] | None:
    if value is None:
        return None
    wanted = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [part for part in wanted if part not in _STATUSES]
    if not wanted or unknown:
        raise ApiError(
            400,
            f"unknown status {', '.join(map(repr, unknown)) or '(empty)'}; "
            f"one or more (comma-separated) of {', '.join(sorted(_STATUSES))}",
            "status",
        )
    return wanted


def created_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400, f"not an RFC 3339 timestamp, e.g. 2026-01-31T12:00:00Z: {value!r}", "created_since"
        ) from None
    if parsed.tzinfo is None:
        raise ApiError(400, "give a time zone, e.g. a trailing Z for UTC", "created_since")
    return parsed.astimezone(UTC)


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode((_CURSOR_PREFIX + last_id).encode()).decode().rstrip("=")


def decode_cursor(value: str | None) -> str | None:
    """The id the next page starts after; opaque to clients, who pass back ``next_cursor`` as given."""
    if value is None:
        return None
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    last_id = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not SWAP_ID.match(last_id):
        raise ApiError(400, "not a cursor this API returned; pass next_cursor back unchanged", "cursor")
    return last_id
