"""The unit of work and the read API of the store, on a real SQLite file."""

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from settlerd.adapters import AdapterStore, Purpose, SignedTx
from settlerd.audit import verify_events
from settlerd.store import Conflict, Leg, NotFound, Store, StoreError, Swap, TxStatus

SECRET = bytes(range(32))
TERMS = {"give": {"asset": "BTC", "amount": "100000000"}, "get": {"asset": "USDC", "amount": "60000000000"}}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(str(tmp_path / "settlerd.db"))
    yield s
    await s.close()


async def new_swap(
    store: Store, swap_id: str, *, status: str = "created", counterparty: str = "desk-b"
) -> None:
    async with store.write() as tx:
        await tx.insert_swap(swap_id, role="initiator", status=status, counterparty=counterparty, terms=TERMS)
        await tx.append_event(swap_id, "created", status, {"terms": TERMS})


async def test_an_exception_inside_write_leaves_neither_change_nor_event(store: Store) -> None:
    await new_swap(store, "s1")
    head_before = await store.chain_head()

    with pytest.raises(RuntimeError, match="crash"):
        async with store.write() as tx:
            await tx.update_swap("s1", status="leg1_locked")
            await tx.append_event("s1", "leg1_locked", "leg1_locked", {"txid": "ab" * 32})
            await tx.insert_swap("s2", role="participant", status="created", counterparty="x", terms={})
            raise RuntimeError("crash between write and commit")

    swap = await store.get_swap("s1")
    assert swap is not None and swap.status == "created"
    assert await store.get_swap("s2") is None
    assert [e.kind for e in await store.events()] == ["created"]
    assert await store.chain_head() == head_before
    async with store.write() as tx:
        again = await tx.append_event("s1", "leg1_locked", "leg1_locked", {})
    assert again.seq == 2 and again.prev_hash == head_before.hash


async def test_state_change_and_event_commit_together(store: Store) -> None:
    await new_swap(store, "s1")
    async with store.write() as tx:
        swap = await tx.update_swap("s1", status="offered", expected_status="created")
        event = await tx.append_event("s1", "offered", swap.status, {"offer": "doc"})
    stored = await store.get_swap("s1")
    assert stored is not None and stored.status == "offered" and stored.updated_at >= stored.created_at
    assert (await store.events(swap_id="s1"))[-1] == event
    assert event.payload == {"offer": "doc"}


async def test_update_with_a_stale_expected_status_conflicts_and_rolls_back(store: Store) -> None:
    await new_swap(store, "s1", status="offered")
    with pytest.raises(Conflict, match="s1 is 'offered', not 'created'"):
        async with store.write() as tx:
            await tx.append_event("s1", "accepted", "accepted", {})
            await tx.update_swap("s1", status="accepted", expected_status="created")
    assert len(await store.events()) == 1
    with pytest.raises(NotFound):
        async with store.write() as tx:
            await tx.update_swap("ghost", status="x")


async def test_the_secret_is_kept_but_never_part_of_a_swap_row(store: Store) -> None:
    async with store.write() as tx:
        await tx.insert_swap(
            "s1", role="initiator", status="created", counterparty="b", terms={}, secret=SECRET
        )
        await tx.insert_swap("s2", role="participant", status="created", counterparty="a", terms={})
    assert await store.get_secret("s1") == SECRET
    assert await store.get_secret("s2") is None
    async with store.write() as tx:
        await tx.set_secret("s2", SECRET[::-1])
    assert await store.get_secret("s2") == SECRET[::-1]
    assert "secret" not in {f.name for f in fields(Swap)}
    swap = await store.get_swap("s1")
    assert SECRET.hex() not in repr(swap) and repr(SECRET) not in repr(swap)


async def test_list_swaps_filters_and_pages(store: Store) -> None:
    statuses = ["created", "leg1_locked", "completed", "created", "refunded", "leg1_locked"]
    for i, status in enumerate(statuses):
        await new_swap(store, f"s{i}", status=status, counterparty="desk-a" if i % 2 else "desk-b")

    assert [s.id for s in await store.list_swaps(status="created")] == ["s0", "s3"]
    assert [s.id for s in await store.list_swaps(status=["created", "refunded"])] == ["s0", "s3", "s4"]
    assert [s.id for s in await store.list_swaps(counterparty="desk-a")] == ["s1", "s3", "s5"]
    assert [s.id for s in await store.live_swaps({"completed", "refunded"})] == ["s0", "s1", "s3", "s5"]

    pages, after = [], None
    while page := await store.list_swaps(after=after, limit=4):
        pages.append([s.id for s in page])
        after = page[-1].id
    assert pages == [["s0", "s1", "s2", "s3"], ["s4", "s5"]]

    third = (await store.list_swaps())[2]
    since = await store.list_swaps(created_since=third.created_at)
    assert [s.id for s in since] == ["s2", "s3", "s4", "s5"]
    assert await store.list_swaps(created_since=datetime.now(UTC) + timedelta(hours=1)) == []


async def test_legs_round_trip_with_amounts_beyond_64_bits(store: Store) -> None:
    await new_swap(store, "s1")
    deadline = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    wei = 2**255 + 12345
    leg1 = Leg("s1", 1, "bitcoin", "BTC", 100_000_000, b"\x11" * 32, "02" + "aa" * 32, "03" + "bb" * 32, 812)
    leg2 = Leg(
        swap_id="s1",
        leg=2,
        chain="evm",
        asset="0x" + "cd" * 20,
        amount=wei,
        hashlock=b"\x11" * 32,
        sender="0x" + "01" * 20,
        recipient="0x" + "02" * 20,
        timelock=1_900_000_000,
        deadline=deadline,
    )
    async with store.write() as tx:
        await tx.upsert_leg(leg2)
        await tx.upsert_leg(leg1)
    assert await store.legs_of("s1") == [leg1, leg2]

    locked = replace(leg1, htlc_id="ff" * 32 + ":0", lock_txid="ff" * 32, confirmations=3, final=True)
    async with store.write() as tx:
        await tx.upsert_leg(locked)
    assert await store.legs_of("s1") == [locked, leg2]
    assert (await store.legs_of("s1"))[1].amount == wei


async def test_a_page_of_legs_and_every_live_log_are_read_at_once(store: Store) -> None:
    # The list endpoint and the engine's restore read these in one or two queries, not one per swap:
    # each swap must still get exactly its own legs, preimage and events, in order.
    for n in range(3):
        async with store.write() as tx:
            await tx.insert_swap(
                f"s{n}",
                role="initiator",
                status="created",
                counterparty="b",
                terms=TERMS,
                secret=bytes([n]) * 32,
            )
            for number in (2, 1):
                await tx.upsert_leg(
                    Leg(f"s{n}", number, "evm", "ETH", n + 1, bytes([n]) * 32, "0xa", "0xb", 9)
                )
            await tx.append_event(f"s{n}", "created", "created", {"n": n})
    async with store.write() as tx:
        await tx.append_event("s0", "locked", "leg1_locked", {"n": 10})
        await tx.update_swap("s1", status="completed")
        await tx.append_event("s1", "ended", "completed", {"n": 11})

    legs = await store.legs_of_many(["s2", "s0", "missing"])
    assert legs == {"s2": await store.legs_of("s2"), "s0": await store.legs_of("s0"), "missing": []}
    assert [(leg.swap_id, leg.leg) for leg in legs["s2"]] == [("s2", 1), ("s2", 2)]
    assert await store.legs_of_many([]) == {}

    logs = await store.live_swap_logs({"completed"})
    assert [(row.id, secret) for row, secret, _ in logs] == [("s0", bytes(32)), ("s2", b"\2" * 32)]
    assert [[e.payload["n"] for e in events] for _, _, events in logs] == [[0, 10], [2]]
    assert [e.seq for e in logs[0][2]] == [e.seq for e in await store.events(swap_id="s0")]


def tx(
    txid: str,
    *,
    chain: str = "evm",
    purpose: Purpose = Purpose.LOCK,
    nonce: int | None = 7,
    htlc_id: str | None = "0x" + "ab" * 32,
) -> SignedTx:
    meta = {"fee": "1200", "vsize": 141}
    return SignedTx(chain, txid, bytes.fromhex("02" * 40), purpose, htlc_id, nonce, meta)


async def test_signed_tx_journal_round_trip(store: Store) -> None:
    await new_swap(store, "s1")
    async with store.write() as t:
        await t.record_signed_tx(tx("aa" * 32, nonce=7), "s1", 1)
        await t.record_signed_tx(tx("bb" * 32, nonce=8, purpose=Purpose.CLAIM), "s1", 2)
        await t.record_signed_tx(tx("cc" * 32, chain="bitcoin", nonce=None, htlc_id=None), "s1", 1)
    # Recording the same transaction again (a restart) neither duplicates nor resets it.
    async with store.write() as t:
        await t.mark_tx("aa" * 32, TxStatus.BROADCAST)
        await t.record_signed_tx(tx("aa" * 32, nonce=7), "s1", 1)

    assert await store.unconfirmed_txs("evm") == [
        tx("aa" * 32, nonce=7),
        tx("bb" * 32, nonce=8, purpose=Purpose.CLAIM),
    ]
    assert await store.unconfirmed_txs("bitcoin") == [
        tx("cc" * 32, chain="bitcoin", nonce=None, htlc_id=None)
    ]

    async with store.write() as t:
        await t.mark_tx("aa" * 32, TxStatus.CONFIRMED, chain="evm", confirmed_height=1234)
        await t.record_signed_tx(tx("dd" * 32, nonce=8, purpose=Purpose.CLAIM), "s1", 2, replaces="bb" * 32)
        await t.mark_tx("bb" * 32, TxStatus.REPLACED)
    assert [s.txid for s in await store.unconfirmed_txs("evm")] == ["dd" * 32]

    records = {r.txid: r for r in await store.signed_txs(swap_id="s1")}
    confirmed = records["aa" * 32]
    assert confirmed.status is TxStatus.CONFIRMED and confirmed.confirmed_height == 1234
    assert confirmed.broadcast_at is not None and confirmed.broadcast_at >= confirmed.created_at
    assert records["dd" * 32].replaces == "bb" * 32 and records["bb" * 32].status is TxStatus.REPLACED
    assert records["cc" * 32].leg == 1 and records["cc" * 32].nonce is None
    assert (records["bb" * 32].purpose, records["bb" * 32].htlc_id) == (Purpose.CLAIM, "0x" + "ab" * 32)
    assert records["cc" * 32].htlc_id is None


async def test_the_htlc_id_is_journaled_in_meta_as_before_it_was_a_field(
    store: Store, tmp_path: Path
) -> None:
    await new_swap(store, "s1")
    async with store.write() as t:
        await t.record_signed_tx(tx("aa" * 32, purpose=Purpose.REFUND, htlc_id="ff" * 32 + ":1"), "s1", 1)
    with closing(sqlite3.connect(tmp_path / "settlerd.db")) as db:
        purpose, meta = db.execute("SELECT purpose, meta FROM signed_txs").fetchone()
    assert (purpose, json.loads(meta)["htlc_id"]) == ("refund", "ff" * 32 + ":1")
    (record,) = await store.signed_txs(swap_id="s1")
    assert record.htlc_id == "ff" * 32 + ":1" and "htlc_id" not in record.meta
    with pytest.raises(NotFound, match="ee"):
        async with store.write() as t:
            await t.mark_tx("ee" * 32, TxStatus.BROADCAST)


async def test_cursors_round_trip_through_the_adapter_protocol(store: Store) -> None:
    adapter_view: AdapterStore = store
    assert await adapter_view.get_cursor("bitcoin", "tip") is None
    await adapter_view.put_cursor("bitcoin", "tip", "812:00ab")
    await adapter_view.put_cursor("evm", "tip", "99")
    await adapter_view.put_cursor("bitcoin", "tip", "813:00cd")
    assert await adapter_view.get_cursor("bitcoin", "tip") == "813:00cd"
    assert await adapter_view.get_cursor("evm", "tip") == "99"
    assert await adapter_view.get_cursor("evm", "nonce") is None


async def test_events_can_be_read_by_swap_and_after_a_seq(store: Store) -> None:
    for i in range(3):
        await new_swap(store, f"s{i}")
    async with store.write() as t:
        await t.append_event(None, "node_started", None, {"version": "0.1.0"})
        await t.append_event("s1", "offered", "offered", {})
    assert [e.seq for e in await store.events(swap_id="s1")] == [2, 5]
    assert [e.kind for e in await store.events(after_seq=3)] == ["node_started", "offered"]
    assert [e.seq for e in await store.events(after_seq=1, limit=2)] == [2, 3]


async def test_concurrent_appends_from_many_tasks_form_one_chain(store: Store) -> None:
    async def worker(n: int) -> list[int]:
        seqs = []
        for i in range(20):
            async with store.write() as t:
                seqs.append((await t.append_event(None, "tick", None, {"worker": n, "i": i})).seq)
        return seqs

    results = await asyncio.gather(*(worker(n) for n in range(8)))
    assert sorted(s for r in results for s in r) == list(range(1, 161))
    report = await verify_events(store)
    assert report.ok and report.checked == 160


async def test_two_stores_on_one_file_keep_one_chain(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    first = await Store.open(path)
    second = await Store.open(path)
    try:

        async def worker(s: Store, n: int) -> None:
            for i in range(25):
                async with s.write() as t:
                    await t.append_event(None, "tick", None, {"store": n, "i": i})

        await asyncio.gather(worker(first, 1), worker(second, 2), worker(first, 3), worker(second, 4))
        report = await verify_events(first)
        assert report.ok and report.checked == 100
        assert [e.seq for e in await second.events(limit=None)] == list(range(1, 101))
    finally:
        await first.close()
        await second.close()


async def test_a_write_cancelled_midway_commits_nothing_and_frees_the_writer(store: Store) -> None:
    inside = asyncio.Event()

    async def interrupted() -> None:
        async with store.write() as t:
            await t.insert_swap("s1", role="initiator", status="created", counterparty="b", terms={})
            await t.append_event("s1", "created", "created", {})
            inside.set()
            await asyncio.Event().wait()  # until cancelled, as SIGTERM cancels every task

    task = asyncio.create_task(interrupted())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await store.get_swap("s1") is None and await store.events() == []
    async with store.write() as t:
        assert (await t.append_event(None, "node_started", None, {})).seq == 1


async def test_a_write_inside_a_write_is_refused_instead_of_hanging(store: Store) -> None:
    with pytest.raises(StoreError, match="inside another write"):
        async with store.write() as t:
            await t.append_event(None, "tick", None, {})
            await store.put_cursor("evm", "nonce", "8")
    assert await store.events() == [] and await store.get_cursor("evm", "nonce") is None
    await store.put_cursor("evm", "nonce", "8")
    assert await store.get_cursor("evm", "nonce") == "8"


async def test_record_replacement_journals_the_bump_under_the_replaced_swap_and_leg(store: Store) -> None:
    await new_swap(store, "s1")
    async with store.write() as t:
        await t.record_signed_tx(tx("aa" * 32, nonce=7, purpose=Purpose.CLAIM), "s1", 2)
        await t.mark_tx("aa" * 32, TxStatus.BROADCAST)
    adapter_view: AdapterStore = store
    bump = tx("bb" * 32, nonce=7, purpose=Purpose.CLAIM)
    await adapter_view.record_replacement(bump, "aa" * 32)
    await adapter_view.record_replacement(bump, "aa" * 32)  # a retry after a crash changes nothing

    # Both stay unconfirmed, newest last: the engine settles whichever one is mined.
    assert await adapter_view.unconfirmed_txs("evm") == [tx("aa" * 32, nonce=7, purpose=Purpose.CLAIM), bump]
    original, replacement = await store.signed_txs(swap_id="s1")
    assert original.status is TxStatus.BROADCAST and original.replaces is None
    assert (replacement.txid, replacement.swap_id, replacement.leg) == ("bb" * 32, "s1", 2)
    assert replacement.status is TxStatus.SIGNED and replacement.replaces == "aa" * 32

    with pytest.raises(NotFound, match="not in the journal"):
        await adapter_view.record_replacement(tx("dd" * 32, nonce=8), "cc" * 32)
    # A txid of another chain is not the one replaced.
    with pytest.raises(NotFound):
        await adapter_view.record_replacement(tx("ee" * 32, chain="bitcoin", nonce=None), "aa" * 32)


async def test_cursors_are_written_and_deleted_at_once_and_read_by_prefix(store: Store) -> None:
    await store.put_cursor("bitcoin", "scanner", "head")
    await store.put_cursors("bitcoin", {"scanner.f.a": "1", "scanner.f.b": "2", "scanner_f.c": "3"})
    await store.put_cursor("evm", "scanner.f.a", "other chain")
    assert await store.get_cursors("bitcoin", "scanner.f.") == {"scanner.f.a": "1", "scanner.f.b": "2"}

    await store.put_cursors("bitcoin", {"scanner.f.a": None, "scanner.f.b": "3", "scanner": "head 2"})
    assert await store.get_cursors("bitcoin", "scanner") == {
        "scanner": "head 2",
        "scanner.f.b": "3",
        "scanner_f.c": "3",
    }
