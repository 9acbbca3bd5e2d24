"""Opening, migrating, configuring and closing the SQLite store, on real files."""

import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from settlerd.store import LATEST_VERSION, SchemaTooNew, Store, StoreError


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(str(tmp_path / "settlerd.db"))
    yield s
    await s.close()


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def wal_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def files_open_here() -> set[str]:
    return {os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}


async def test_migrates_an_empty_file_to_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = await Store.open(f"sqlite:///{path}")
    await store.close()
    assert {
        "schema_version",
        "swaps",
        "legs",
        "signed_txs",
        "chain_cursors",
        "events",
        "event_chain_head",
    } <= tables(path)
    with sqlite3.connect(path) as db:
        versions = [r[0] for r in db.execute("SELECT version FROM schema_version ORDER BY version")]
        head = db.execute("SELECT id, seq, hash FROM event_chain_head").fetchall()
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert versions == list(range(1, LATEST_VERSION + 1))
    assert head == [(1, 0, "0" * 64)]
    assert {"ix_swaps_status", "ix_swaps_counterparty", "ix_swaps_created_at"} <= indexes
    assert "ix_events_swap_seq" in indexes


async def test_reopen_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "keep.db"
    store = await Store.open(str(path))
    async with store.write() as tx:
        await tx.insert_swap("s1", role="initiator", status="created", counterparty="desk-b", terms={"x": 1})
        await tx.append_event("s1", "created", "created", {"x": 1})
    await store.close()

    store = await Store.open(str(path))
    try:
        swap = await store.get_swap("s1")
        assert swap is not None and swap.terms == {"x": 1}
        assert [e.seq for e in await store.events()] == [1]
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM schema_version").fetchone()[0] == LATEST_VERSION


async def test_refuses_a_database_from_a_newer_settlerd(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    await (await Store.open(str(path))).close()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO schema_version (version, description, applied_at) "
            "VALUES (?, 'from the future', '2030-01-01 00:00:00.000000')",
            (LATEST_VERSION + 7,),
        )
    with pytest.raises(SchemaTooNew) as err:
        await Store.open(str(path))
    message = str(err.value)
    assert str(path) in message
    assert f"version {LATEST_VERSION + 7}" in message and f"up to {LATEST_VERSION}" in message
    assert "\n" not in message


async def test_missing_directory_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "settlerd.db"
    with pytest.raises(StoreError, match=r"directory .*nope does not exist") as err:
        await Store.open(str(path))
    assert str(path) in str(err.value)
    assert not (tmp_path / "nope").exists()


async def test_a_directory_as_database_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is not a regular file"):
        await Store.open(str(tmp_path))


async def test_a_file_that_is_not_a_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are not the swaps you are looking for\n")
    with pytest.raises(StoreError, match="not an SQLite database") as err:
        await Store.open(str(path))
    assert str(path) in str(err.value)
    assert path.read_text() == "these are not the swaps you are looking for\n"


async def test_a_foreign_sqlite_database_is_refused_without_changes(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE swaps (something TEXT)")
    with pytest.raises(StoreError, match=r"migration 1 .* failed") as err:
        await Store.open(str(path))
    assert str(path) in str(err.value)
    assert tables(path) == {"swaps"}  # the failed migration's transaction left nothing behind


@pytest.mark.parametrize("url", [":memory:", "sqlite://", "sqlite:///:memory:", "mysql://db/x"])
async def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(StoreError):
        await Store.open(url)


async def test_durability_pragmas_are_in_effect_on_store_connections(store: Store) -> None:
    # Read back on the store's own pooled connections: synchronous and foreign_keys are per connection.
    async with store._engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2  # FULL
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 10_000


async def test_a_write_transaction_holds_the_write_lock_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = await Store.open(str(path))
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        async with store.write() as tx:
            # Nothing written yet: BEGIN IMMEDIATE alone must keep another process from writing.
            assert await tx.get_swap("none") is None
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()
        await store.close()


async def test_foreign_keys_are_enforced(store: Store) -> None:
    from settlerd.store import Leg

    with pytest.raises(StoreError, match="FOREIGN KEY constraint failed"):
        async with store.write() as tx:
            await tx.upsert_leg(Leg("ghost", 1, "bitcoin", "BTC", 1, b"\0" * 32, "a", "b", 1))


async def test_close_checkpoints_the_wal_and_releases_the_files(tmp_path: Path) -> None:
    path = tmp_path / "closed.db"
    store = await Store.open(str(path))
    async with store.write() as tx:
        for i in range(50):
            await tx.append_event(None, "tick", None, {"i": i})
    assert wal_size(path) > 0
    await store.close()

    assert wal_size(path) == 0
    assert not {str(path), f"{path}-wal", f"{path}-shm"} & files_open_here()
    # Everything is in the main file: a reader that ignores the WAL still sees all events.
    with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 50
    with pytest.raises(StoreError, match="closed"):
        await store.get_swap("x")
