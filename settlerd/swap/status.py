"""The public status vocabulary: what the HTTP API and MQTT publish for a swap. docs/status.md explains each.

The values are stable strings; renaming one breaks every venue that reads them.
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    LEG1_LOCKING = "leg1_locking"
    LEG1_LOCKED = "leg1_locked"
    LEG1_FINAL = "leg1_final"
    LEG2_LOCKING = "leg2_locking"
    LEG2_LOCKED = "leg2_locked"
    LEG2_FINAL = "leg2_final"
    LEG2_CLAIMING = "leg2_claiming"
    REFUNDING = "refunding"
    LEG2_CLAIMED = "leg2_claimed"
    LEG1_CLAIMING = "leg1_claiming"
    LEG1_CLAIMED = "leg1_claimed"
    COMPLETED = "completed"
    REFUNDED = "refunded"
    FAILED = "failed"
    CANCELLED = "cancelled"


# A swap's status only ever moves forward in this order (S5), except through a chain reorganisation.
# It is the order statuses can follow one another, not the happy path: a refund can start while the
# initiator's claim is still unconfirmed, and a claim can still win while the participant refunds.
ORDER: tuple[Status, ...] = tuple(Status)

TERMINAL: frozenset[Status] = frozenset({Status.COMPLETED, Status.REFUNDED, Status.FAILED, Status.CANCELLED})

_RANK = {status: min(index, len(ORDER) - len(TERMINAL)) for index, status in enumerate(ORDER)}


def rank(status: Status) -> int:
    """Position in ``ORDER``; all terminal statuses share the last rank, since none is ever left."""
    return _RANK[status]


def is_terminal(status: Status) -> bool:
    return status in TERMINAL
