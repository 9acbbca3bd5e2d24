"""Audit of the hash-chained event log (``settlerd audit verify``).

The chain is recomputed from the first event. What each kind of tampering looks like:

- a row edited in place: its stored hash no longer matches its contents (``altered``);
- a row edited and re-hashed: it is consistent on its own, but the next event's ``prev_hash`` still
  holds the old hash (``relinked``, reported at the edited row);
- a row deleted from the middle: a gap in ``seq`` (``removed``); deleted and the rest renumbered or
  reordered: ``seq`` is hashed, so the moved rows are ``altered``;
- the last rows deleted: the chain alone cannot show it, so every append also records the newest
  (seq, hash) in the one-row ``event_chain_head`` table, and a log that ends before that head was
  cut (``removed``). Someone who can also rewrite that row can hide a cut tail; publishing the head
  elsewhere (MQTT, a peer) is what closes that.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from settlerd.store import GENESIS_HASH, Event, Store, event_hash

AUDIT_PAGE = 5000  # events per read: bounded memory on a long log


class Problem(enum.StrEnum):
    ALTERED = "altered"
    RELINKED = "relinked"
    REMOVED = "removed"
    HEAD_MISMATCH = "head-mismatch"


@dataclass(frozen=True, slots=True)
class AuditReport:
    ok: bool
    checked: int  # events whose hash and link were verified
    head_seq: int  # the chain head's seq when the audit started
    first_bad_seq: int | None = None
    problem: Problem | None = None
    reason: str = ""


def _recomputed(event: Event) -> str:
    return event_hash(
        seq=event.seq,
        swap_id=event.swap_id,
        kind=event.kind,
        status=event.status,
        payload=event.payload_json,
        created_at=event.created_at,
        prev_hash=event.prev_hash,
    )


async def verify_events(store: Store) -> AuditReport:
    """Recompute the whole chain; report the first bad event and why, or that all is intact."""
    # Read the head first, then the log up to it: events appended meanwhile are left for next time.
    head = await store.chain_head()
    checked = 0
    prev_seq = 0
    prev_hash = GENESIS_HASH

    def bad(seq: int, problem: Problem, reason: str) -> AuditReport:
        return AuditReport(False, checked, head.seq, seq, problem, f"{problem}: {reason}")

    while prev_seq < head.seq:
        page = await store.events(after_seq=prev_seq, limit=AUDIT_PAGE)
        page = [e for e in page if e.seq <= head.seq]
        if not page:
            break
        for event in page:
            expected = prev_seq + 1
            if event.seq != expected:
                missing = f"{expected}" if event.seq == expected + 1 else f"{expected}..{event.seq - 1}"
                return bad(expected, Problem.REMOVED, f"event {missing} missing from the log")
            if _recomputed(event) != event.hash:
                return bad(event.seq, Problem.ALTERED, "stored hash does not match the event's contents")
            if event.prev_hash != prev_hash:
                return bad(
                    prev_seq,
                    Problem.RELINKED,
                    f"event {event.seq} was chained to a different hash: this event was edited and "
                    "re-hashed, or events around it were removed or reordered",
                )
            checked += 1
            prev_seq, prev_hash = event.seq, event.hash
    if prev_seq < head.seq:
        missing = f"{prev_seq + 1}" if head.seq == prev_seq + 1 else f"{prev_seq + 1}..{head.seq}"
        return bad(
            prev_seq + 1,
            Problem.REMOVED,
            f"event {missing} missing: the chain head records event {head.seq} "
            f"but the log ends at {prev_seq}",
        )
    if prev_hash != head.hash:
        return bad(
            head.seq,
            Problem.HEAD_MISMATCH,
            "the last event's hash differs from the one in the chain head: it was edited and re-hashed",
        )
    # The head only moves forward and commits with each append, so an event beyond a head read
    # after it was not appended by a store: written outside settlerd, or the head was rolled back.
    beyond = await store.events(after_seq=head.seq, limit=1)
    latest = await store.chain_head()
    if beyond and beyond[0].seq > latest.seq:
        return bad(
            beyond[0].seq,
            Problem.HEAD_MISMATCH,
            f"event {beyond[0].seq} lies beyond the chain head (event {latest.seq}): "
            "written outside settlerd, or the head was rolled back",
        )
    return AuditReport(True, checked, head.seq)
