"""The public status document of a swap: the one shape the HTTP API and MQTT both publish.

Built from store rows only. The store's row types never carry the preimage (it lives in a column no
row type reads), and this module names every field it copies, so nothing secret can slip in (S7).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from settlerd.store import Event, Leg, Swap
from settlerd.swap import TERMINAL

_TERMINAL = frozenset(str(status) for status in TERMINAL)


def timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, the one form every document uses."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _optional_timestamp(value: datetime | None) -> str | None:
    return None if value is None else timestamp(value)


def leg_document(leg: Leg) -> dict[str, Any]:
    return {
        "leg": leg.leg,
        "chain": leg.chain,
        "asset": leg.asset,
        # A decimal string of base units: wei amounts exceed what JSON numbers carry exactly.
        "amount": str(leg.amount),
        "sender": leg.sender,
        "recipient": leg.recipient,
        "hashlock": leg.hashlock.hex(),
        "timelock": leg.timelock,
        "htlc_id": leg.htlc_id,
        "lock_txid": leg.lock_txid,
        "claim_txid": leg.claim_txid,
        "refund_txid": leg.refund_txid,
        "confirmations": leg.confirmations,
        "final": leg.final,
        "deadline": _optional_timestamp(leg.deadline),
    }


def status_document(swap: Swap, legs: Iterable[Leg]) -> dict[str, Any]:
    """The swap as desks and venues see it; MQTT adds the event ``seq`` it was published for."""
    return {
        "id": swap.id,
        "role": swap.role,
        "status": swap.status,
        "terminal": swap.status in _TERMINAL,
        "counterparty": swap.counterparty,
        "created_at": timestamp(swap.created_at),
        "updated_at": timestamp(swap.updated_at),
        "legs": [leg_document(leg) for leg in sorted(legs, key=lambda leg: leg.leg)],
    }


def event_document(event: Event) -> dict[str, Any]:
    """One entry of a swap's timeline, as the events endpoint, SSE and MQTT carry it."""
    payload: Mapping[str, Any] = event.payload
    return {
        "seq": event.seq,
        "swap_id": event.swap_id,
        "kind": event.kind,
        "status": event.status,
        "created_at": timestamp(event.created_at),
        "payload": dict(payload),
    }
