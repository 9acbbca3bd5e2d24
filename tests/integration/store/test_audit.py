"""The hash-chained event log against tampering from outside, on a real SQLite file.

Every tampering is done the way an intruder would: raw SQL through a separate sqlite3 connection.
"""

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from settlerd.audit import Problem, verify_events
from settlerd.store import GENESIS_HASH, Event, Store, event_hash

EVENTS = 6


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[tuple[Store, Path]]:
    path = tmp_path / "settlerd.db"
    store = await Store.open(str(path))
    for i in range(EVENTS):
        async with store.write() as tx:
            await tx.append_event(f"s{i % 2}", "step", f"status{i}", {"i": i, "amount": str(10**20 + i)})
    yield store, path
    await store.close()


def tamper(path: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(path) as raw:
        raw.execute(sql, params)


async def test_an_empty_log_verifies(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "empty.db"))
    try:
        report = await verify_events(store)
    finally:
        await store.close()
    assert report.ok and report.checked == 0 and report.first_bad_seq is None


async def test_an_untouched_log_verifies_from_the_first_event(db: tuple[Store, Path]) -> None:
    store, _ = db
    report = await verify_events(store)
    assert report.ok and report.checked == EVENTS and report.head_seq == EVENTS
    first = (await store.events(limit=1))[0]
    assert first.prev_hash == GENESIS_HASH


async def test_an_edited_payload_is_caught_at_that_event(db: tuple[Store, Path]) -> None:
    store, path = db
    tamper(path, "UPDATE events SET payload = ? WHERE seq = 3", '{"amount":"1","i":2}')
    report = await verify_events(store)
    assert not report.ok
    assert (report.first_bad_seq, report.problem, report.checked) == (3, Problem.ALTERED, 2)


async def test_an_edited_status_is_caught(db: tuple[Store, Path]) -> None:
    store, path = db
    tamper(path, "UPDATE events SET status = 'completed' WHERE seq = 5")
    report = await verify_events(store)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 5, Problem.ALTERED)


async def test_a_deleted_middle_event_is_caught(db: tuple[Store, Path]) -> None:
    store, path = db
    tamper(path, "DELETE FROM events WHERE seq = 4")
    report = await verify_events(store)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 4, Problem.REMOVED)
    assert "event 4 missing" in report.reason


async def test_a_deleted_last_event_is_caught_through_the_chain_head(db: tuple[Store, Path]) -> None:
    store, path = db
    tamper(path, "DELETE FROM events WHERE seq = ?", EVENTS)
    report = await verify_events(store)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, EVENTS, Problem.REMOVED)
    assert f"chain head records event {EVENTS}" in report.reason


async def test_an_edited_and_rehashed_event_is_caught_by_the_next_link(db: tuple[Store, Path]) -> None:
    store, path = db
    victim = (await store.events(after_seq=2, limit=1))[0]
    forged = replace(victim, payload_json='{"amount":"1","i":2}')
    tamper(path, "UPDATE events SET payload = ?, hash = ? WHERE seq = 3", forged.payload_json, rehash(forged))
    report = await verify_events(store)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 3, Problem.RELINKED)


async def test_a_rehashed_last_event_is_caught_through_the_chain_head(db: tuple[Store, Path]) -> None:
    store, path = db
    victim = (await store.events(after_seq=EVENTS - 1))[0]
    forged = replace(victim, status="completed")
    tamper(path, "UPDATE events SET status = ?, hash = ? WHERE seq = ?", "completed", rehash(forged), EVENTS)
    report = await verify_events(store)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, EVENTS, Problem.HEAD_MISMATCH)


async def test_reordered_events_are_caught(db: tuple[Store, Path]) -> None:
    store, path = db
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE events SET seq = -1 WHERE seq = 2")
        raw.execute("UPDATE events SET seq = 2 WHERE seq = 3")
        raw.execute("UPDATE events SET seq = 3 WHERE seq = -1")
    report = await verify_events(store)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 2, Problem.ALTERED)


async def test_an_event_slipped_in_after_the_head_is_caught(db: tuple[Store, Path]) -> None:
    store, path = db
    last = (await store.events(after_seq=EVENTS - 1))[0]
    forged = Event(EVENTS + 1, "s0", "step", "completed", "{}", last.created_at, last.hash, "")
    tamper(
        path,
        "INSERT INTO events (seq, swap_id, kind, status, payload, created_at, prev_hash, hash) "
        "SELECT ?, swap_id, kind, 'completed', '{}', created_at, ?, ? FROM events WHERE seq = ?",
        EVENTS + 1,
        last.hash,
        rehash(forged),
        EVENTS,
    )
    report = await verify_events(store)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, EVENTS + 1, Problem.HEAD_MISMATCH)


def rehash(event: Event) -> str:
    return event_hash(
        seq=event.seq,
        swap_id=event.swap_id,
        kind=event.kind,
        status=event.status,
        payload=event.payload_json,
        created_at=event.created_at,
        prev_hash=event.prev_hash,
    )
