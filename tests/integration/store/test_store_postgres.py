"""The same store on PostgreSQL (127.0.0.1:5432): each test gets a database of its own, dropped after."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from settlerd.adapters import Purpose, SignedTx
from settlerd.audit import Problem, verify_events
from settlerd.store import LATEST_VERSION, Leg, SchemaTooNew, Store, StoreError, TxStatus
from tests.fixtures.postgres import PG_SERVER, fresh_database

pytestmark = pytest.mark.postgres

SECRET = b"\1" * 32


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_database("settlerd_store") as url:
        yield url


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[Store]:
    s = await Store.open(pg_url)
    yield s
    await s.close()


async def raw(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def fill(store: Store, n: int) -> None:
    for i in range(n):
        async with store.write() as tx:
            await tx.append_event(f"s{i % 2}", "step", f"status{i}", {"i": i, "amount": str(10**30 + i)})


async def test_migrates_an_empty_database_and_reopens_with_data(pg_url: str) -> None:
    store = await Store.open(pg_url)
    assert store.backend == "postgresql"
    async with store.write() as tx:
        await tx.insert_swap("s1", role="participant", status="created", counterparty="a", terms={"n": 1})
        await tx.append_event("s1", "created", "created", {"n": 1})
    await store.close()

    store = await Store.open(pg_url)
    try:
        swap = await store.get_swap("s1")
        assert swap is not None and swap.terms == {"n": 1} and swap.created_at.tzinfo is not None
        assert (await verify_events(store)).ok
    finally:
        await store.close()
    versions = await raw(pg_url, "SELECT version FROM schema_version ORDER BY version")
    assert [r["version"] for r in versions] == list(range(1, LATEST_VERSION + 1))
    indexes = {r["indexname"] for r in await raw(pg_url, "SELECT indexname FROM pg_indexes")}
    assert {"ix_swaps_status", "ix_swaps_counterparty", "ix_swaps_created_at"} <= indexes
    assert "ix_events_swap_seq" in indexes


async def test_daemons_starting_together_migrate_once(pg_url: str) -> None:
    stores = await asyncio.gather(*(Store.open(pg_url) for _ in range(3)))
    for s in stores:
        await s.close()
    rows = await raw(pg_url, "SELECT version FROM schema_version")
    assert sorted(r["version"] for r in rows) == list(range(1, LATEST_VERSION + 1))


async def test_refuses_a_database_from_a_newer_settlerd(pg_url: str) -> None:
    await (await Store.open(pg_url)).close()
    await raw(
        pg_url,
        "INSERT INTO schema_version (version, description, applied_at) VALUES ($1, 'future', now())",
        LATEST_VERSION + 1,
    )
    with pytest.raises(SchemaTooNew, match=f"version {LATEST_VERSION + 1} but this settlerd knows up to"):
        await Store.open(pg_url)


async def test_unreachable_or_missing_database_is_one_clear_error(pg_url: str) -> None:
    with pytest.raises(StoreError, match="no_such_db") as err:
        await Store.open(f"{PG_SERVER}/no_such_db_{uuid.uuid4().hex[:6]}")
    assert "\n" not in str(err.value)
    with pytest.raises(StoreError, match="cannot open") as err:
        await Store.open("postgresql://postgres:hunter2@127.0.0.1:1/test")
    assert "hunter2" not in str(err.value)


async def test_an_exception_inside_write_leaves_neither_change_nor_event(store: Store) -> None:
    async with store.write() as tx:
        await tx.insert_swap("s1", role="initiator", status="created", counterparty="b", terms={})
        await tx.append_event("s1", "created", "created", {})
    with pytest.raises(RuntimeError):
        async with store.write() as tx:
            await tx.update_swap("s1", status="leg1_locked")
            await tx.append_event("s1", "leg1_locked", "leg1_locked", {})
            raise RuntimeError("crash")
    swap = await store.get_swap("s1")
    assert swap is not None and swap.status == "created"
    assert [e.seq for e in await store.events()] == [1]
    assert (await store.chain_head()).seq == 1


async def test_tampering_is_caught_at_the_right_event(pg_url: str, store: Store) -> None:
    await fill(store, 6)
    assert (await verify_events(store)).ok

    await raw(pg_url, """UPDATE events SET payload = '{"i":2}' WHERE seq = 3""")
    report = await verify_events(store)
    assert (report.first_bad_seq, report.problem) == (3, Problem.ALTERED)

    await raw(pg_url, "DELETE FROM events WHERE seq = 3")
    report = await verify_events(store)
    assert (report.first_bad_seq, report.problem) == (3, Problem.REMOVED)

    await raw(pg_url, "DELETE FROM events WHERE seq = 6")
    await raw(pg_url, "DELETE FROM events WHERE seq = 2")
    report = await verify_events(store)
    assert (report.first_bad_seq, report.problem) == (2, Problem.REMOVED)


async def test_a_deleted_last_event_is_caught(pg_url: str, store: Store) -> None:
    await fill(store, 4)
    await raw(pg_url, "DELETE FROM events WHERE seq = 4")
    report = await verify_events(store)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 4, Problem.REMOVED)


async def test_two_stores_appending_at_once_keep_one_chain(pg_url: str) -> None:
    first, second = await Store.open(pg_url), await Store.open(pg_url)
    try:

        async def worker(s: Store, n: int) -> list[int]:
            seqs = []
            for i in range(15):
                async with s.write() as tx:
                    seqs.append((await tx.append_event(None, "tick", None, {"w": n, "i": i})).seq)
            return seqs

        results = await asyncio.gather(*(worker(s, n) for n, s in enumerate([first, second] * 3)))
        assert sorted(seq for r in results for seq in r) == list(range(1, 91))
        for s in (first, second):
            report = await verify_events(s)
            assert report.ok and report.checked == 90
    finally:
        await first.close()
        await second.close()


async def test_journal_cursors_and_legs_round_trip(store: Store) -> None:
    lock = SignedTx("evm", "aa" * 32, b"\0\1\2\xff", Purpose.LOCK, "0x" + "cd" * 32, 5, {"gas": 21000})
    async with store.write() as tx:
        await tx.insert_swap("s1", role="initiator", status="new", counterparty="b", terms={}, secret=SECRET)
        await tx.upsert_leg(Leg("s1", 2, "evm", "ETH", 2**200 + 1, b"\2" * 32, "0xa", "0xb", 1_900_000_000))
        await tx.record_signed_tx(lock, "s1", 2)
        await tx.record_signed_tx(lock, "s1", 2)
    await store.put_cursor("evm", "tip", "100")
    await store.put_cursor("evm", "tip", "101")

    assert await store.get_cursor("evm", "tip") == "101"
    assert await store.get_secret("s1") == SECRET
    assert (await store.legs_of("s1"))[0].amount == 2**200 + 1
    assert await store.unconfirmed_txs("evm") == [lock]
    bump = SignedTx("evm", "bb" * 32, b"\3", Purpose.LOCK, "0x" + "cd" * 32, 5, {"gas": 21000})
    await store.record_replacement(bump, "aa" * 32)
    assert await store.unconfirmed_txs("evm") == [lock, bump]
    assert [(r.swap_id, r.leg, r.replaces) for r in await store.signed_txs(swap_id="s1")][1] == (
        "s1",
        2,
        "aa" * 32,
    )
    async with store.write() as tx:
        await tx.mark_tx("aa" * 32, TxStatus.CONFIRMED, confirmed_height=77)
        await tx.mark_tx("bb" * 32, TxStatus.REPLACED)
    assert await store.unconfirmed_txs("evm") == []
    assert [s.id for s in await store.live_swaps({"completed"})] == ["s1"]
    assert [(row.id, secret, events) for row, secret, events in await store.live_swap_logs({"new"})] == []
    [(row, secret, events)] = await store.live_swap_logs({"completed"})
    assert (row.id, secret, events) == ("s1", SECRET, [])
    assert (await store.legs_of_many(["s1"]))["s1"][0].amount == 2**200 + 1
