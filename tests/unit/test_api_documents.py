"""Pure parts of the API: the status document, cursors, query checks and token matching."""

from __future__ import annotations

import hashlib
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest

from settlerd.api import params
from settlerd.api.auth import allows, find_token
from settlerd.api.errors import ApiError
from settlerd.config import ApiToken
from settlerd.status.document import event_document, status_document
from settlerd.store import Event, Leg, Swap

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def swap(status: str) -> Swap:
    return Swap("s-1", "participant", status, "desk-a", {"pair": "BTC/ETH"}, NOW, NOW + timedelta(seconds=1))


def leg(number: int, amount: int) -> Leg:
    return Leg("s-1", number, "evm", "ETH", amount, b"\x11" * 32, "0xa", "0xb", 99, deadline=NOW)


def test_status_document_copies_rows_field_by_field() -> None:
    doc = status_document(swap("leg1_final"), [leg(2, 2**200), leg(1, 5)])
    assert [item["leg"] for item in doc["legs"]] == [1, 2]
    assert doc["legs"][1]["amount"] == str(2**200)
    assert doc["legs"][0]["hashlock"] == "11" * 32
    assert doc["created_at"] == "2026-03-01T12:00:00Z" and doc["updated_at"] == "2026-03-01T12:00:01Z"
    assert doc["terminal"] is False
    assert "terms" not in doc and "secret" not in doc
    assert set(doc["legs"][0]) == {f.name for f in fields(Leg)} - {"swap_id"}


@pytest.mark.parametrize("status", ["completed", "refunded", "failed", "cancelled"])
def test_terminal_statuses_are_flagged(status: str) -> None:
    assert status_document(swap(status), [])["terminal"] is True


def test_event_document() -> None:
    event = Event(7, "s-1", "lock_seen", None, '{"confirmations":1}', NOW, "0" * 64, "f" * 64)
    assert event_document(event) == {
        "seq": 7,
        "swap_id": "s-1",
        "kind": "lock_seen",
        "status": None,
        "created_at": "2026-03-01T12:00:00Z",
        "payload": {"confirmations": 1},
    }


@pytest.mark.parametrize("swap_id", ["a", "swap-1", "0f" * 32, "desk.b:42_x"])
def test_cursor_round_trips(swap_id: str) -> None:
    cursor = params.encode_cursor(swap_id)
    assert swap_id not in cursor
    assert params.decode_cursor(cursor) == swap_id


@pytest.mark.parametrize("cursor", ["", "!!!", "djE6", "aGVsbG8", params.encode_cursor("x")[:-1] + "*"])
def test_foreign_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(ApiError) as caught:
        params.decode_cursor(cursor)
    assert caught.value.status == 400 and caught.value.field == "cursor"


def test_status_filter_takes_the_vocabulary_only() -> None:
    assert params.statuses("offered,completed") == ["offered", "completed"]
    for listed, wrong in (("offered,done", "'done'"), ("offered, completed", "' completed'"), ("", "''")):
        with pytest.raises(ApiError) as caught:
            params.statuses(listed)
        assert wrong in caught.value.error


def test_created_since_needs_a_time_zone() -> None:
    assert params.created_since("2026-01-01T00:00:00+02:00") == datetime(2025, 12, 31, 22, tzinfo=UTC)
    with pytest.raises(ApiError):
        params.created_since("2026-01-01T00:00:00")


def test_tokens_match_by_hash_and_scopes_nest() -> None:
    tokens = [
        ApiToken(name=name, scope=scope, sha256=hashlib.sha256(name.encode()).hexdigest().upper())
        for name, scope in (("venue", "read"), ("desk", "trade"))
    ]
    assert find_token("desk", tokens) == tokens[1]
    assert find_token("nobody", tokens) is None
    assert allows("admin", "trade") and allows("trade", "read") and allows("read", "read")
    assert not allows("read", "trade") and not allows("trade", "admin")


def test_openapi_documents_exactly_the_routes_served() -> None:
    from settlerd.api import STATUS_ROUTES
    from settlerd.api.app import TRADE_ROUTES
    from settlerd.api.openapi import openapi_document

    routes = (*STATUS_ROUTES, *TRADE_ROUTES)
    paths = openapi_document()["paths"]
    documented = {(method.upper(), path) for path, operations in paths.items() for method in operations}
    assert documented == {(route.method, route.path) for route in routes}
    open_routes = {route.path for route in routes if route.scope is None}
    assert open_routes == {
        path for path, ops in paths.items() for op in ops.values() if op.get("security") == []
    }
