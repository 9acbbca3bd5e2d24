"""Replicas of one node on PostgreSQL (127.0.0.1:5432): one leader through the lease, a fencing token on
every write, identities compared at start; and one process only on an SQLite file."""

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from settlerd.adapters import CheckStatus, Purpose, SignedTx
from settlerd.config import Settings
from settlerd.doctor.store import diagnose_store
from settlerd.leadership import LEADER, SINGLE, STANDBY, Replica, ReplicaRefused, keys_fingerprint
from settlerd.store import Store, StoreError, TxStatus
from settlerd.store.connect import PG_IDLE_IN_TRANSACTION_TIMEOUT_MS
from settlerd.store.lease import LeadershipLost
from tests.fixtures.postgres import fresh_database

pytestmark = pytest.mark.postgres

NODE = "desk"
KEY = "02" + "ab" * 32
LEASE = timedelta(seconds=1)
# Bounds of the waits below: a takeover comes within a quarter lease of expiry, plus scheduling slack.
TAKEOVER_WAIT_S = 5.0


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_database("settlerd_replicas") as url:
        yield url


@pytest.fixture
async def stores(pg_url: str) -> AsyncIterator[list[Store]]:
    opened = [await Store.open(pg_url) for _ in range(3)]
    yield opened
    for store in opened:
        await store.close()


def replica(store: Store, node_id: str = NODE, key: str | None = KEY, keys: str = "f" * 64) -> Replica:
    return Replica(store, node_id=node_id, node_key=key, lease=LEASE, keys_fingerprint=keys)


async def admitted(store: Store) -> Replica:
    r = replica(store)
    await r.admit()
    return r


async def seed_swap(store: Store) -> None:
    async with store.write() as tx:
        await tx.insert_swap("s1", role="initiator", status="new", counterparty="b", terms={})


async def test_one_leader_at_a_time_and_the_token_grows_at_each_takeover(stores: list[Store]) -> None:
    replicas = [replica(s) for s in stores]
    for r in replicas:
        await r.admit()
    await asyncio.wait_for(replicas[0].lead("http://a"), TAKEOVER_WAIT_S)
    assert (replicas[0].role, replicas[0].token) == (LEADER, 1)
    # The others stay standbys while the leader renews, and learn where it is.
    keeper = asyncio.create_task(replicas[0].keep())
    waiting = [asyncio.create_task(r.lead(f"http://{n}")) for n, r in enumerate(replicas[1:])]
    await asyncio.sleep(3 * LEASE.total_seconds())
    assert not any(w.done() for w in waiting)
    assert [(r.role, r.leader_url) for r in replicas[1:]] == [(STANDBY, "http://a")] * 2
    # A clean stop hands the lease over at once; exactly one standby gets it, with the next token.
    keeper.cancel()
    await replicas[0].release()
    done, pending = await asyncio.wait(waiting, timeout=TAKEOVER_WAIT_S, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1
    await asyncio.sleep(LEASE.total_seconds())
    assert all(not w.done() for w in pending)
    leaders = [r for r in replicas[1:] if r.role == LEADER]
    assert len(leaders) == 1 and leaders[0].token == 2
    for w in pending:
        w.cancel()


async def test_a_deposed_leader_cannot_journal_a_transaction_or_a_nonce(stores: list[Store]) -> None:
    old, new = await admitted(stores[0]), await admitted(stores[1])
    await old.lead("http://old")
    await seed_swap(stores[0])
    # The old leader stops renewing (paused, cut off); once its lease lapses the standby takes over.
    started = time.monotonic()
    await asyncio.wait_for(new.lead("http://new"), LEASE.total_seconds() + TAKEOVER_WAIT_S)
    assert time.monotonic() - started >= LEASE.total_seconds() * 0.9
    assert new.token == old.token + 1  # type: ignore[operator]

    lock = SignedTx("evm", "aa" * 32, b"\1", Purpose.LOCK, "h1", 7, {"from": "0xa"})
    with pytest.raises(LeadershipLost, match=r"fencing token 1\): replica .* took over with fencing token 2"):
        async with stores[0].write() as tx:
            await tx.record_signed_tx(lock, swap_id="s1", leg=1)
    with pytest.raises(LeadershipLost):
        await stores[0].put_cursor("evm", "nonce:0xa", "8")
    assert await stores[2].signed_txs() == []
    assert await stores[2].get_cursor("evm", "nonce:0xa") is None
    # The new leader journals as usual; the old one cannot even bump what it sees.
    async with stores[1].write() as tx:
        await tx.record_signed_tx(lock, swap_id="s1", leg=1)
    bump = SignedTx("evm", "bb" * 32, b"\2", Purpose.LOCK, "h1", 7, {"from": "0xa"})
    with pytest.raises(LeadershipLost):
        await stores[0].record_replacement(bump, lock.txid)
    assert [(r.txid, r.status) for r in await stores[2].signed_txs()] == [(lock.txid, TxStatus.SIGNED)]


async def test_an_expired_lease_fences_writes_even_before_anyone_takes_over(stores: list[Store]) -> None:
    leader = await admitted(stores[0])
    await leader.lead("http://a")
    await asyncio.sleep(LEASE.total_seconds() * 1.5)  # no renewal: a leader paused past its lease
    with pytest.raises(LeadershipLost, match="expired"):
        await seed_swap(stores[0])
    with pytest.raises(LeadershipLost):
        await leader.keep()


async def test_a_leader_paused_inside_a_write_does_not_hold_up_the_takeover(stores: list[Store]) -> None:
    """SIGSTOP in the middle of a transaction: its lock on the lease row would block the takeover forever;
    the server ends the idle transaction, the standby takes over and the paused write never commits."""
    old, new = await admitted(stores[0]), await admitted(stores[1])
    await old.lead("http://old")
    await seed_swap(stores[0])
    lock = SignedTx("bitcoin", "cc" * 32, b"\3", Purpose.LOCK, "h2")
    paused_s = LEASE.total_seconds() + PG_IDLE_IN_TRANSACTION_TIMEOUT_MS / 1000 + 1

    async def paused_write() -> None:
        async with stores[0].write() as tx:
            await tx.record_signed_tx(lock, swap_id="s1", leg=1)
            await asyncio.sleep(paused_s)  # the connection sits idle in its transaction, as when stopped

    writing = asyncio.create_task(paused_write())
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await asyncio.wait_for(new.lead("http://new"), paused_s + TAKEOVER_WAIT_S)
    took = time.monotonic() - started
    assert took < PG_IDLE_IN_TRANSACTION_TIMEOUT_MS / 1000 + TAKEOVER_WAIT_S
    with pytest.raises(StoreError):
        await writing
    assert await stores[2].signed_txs() == []


async def test_replicas_of_another_node_or_key_are_refused(stores: list[Store]) -> None:
    await replica(stores[0]).admit()
    await replica(stores[1]).admit()  # the same node again: admitted
    with pytest.raises(ReplicaRefused, match="belongs to node 'desk', this replica is 'other'"):
        await replica(stores[1], node_id="other").admit()
    with pytest.raises(ReplicaRefused, match=r"node key .* every replica must use the same"):
        await replica(stores[2], key="03" + "cd" * 32).admit()
    with pytest.raises(ReplicaRefused, match="node key"):
        await replica(stores[2], key=None).admit()
    with pytest.raises(ReplicaRefused, match="other wallet keys than this replica's"):
        await replica(stores[2], keys="e" * 64).admit()


def test_the_keys_fingerprint_follows_wallet_keys_only(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    seed.write_text("ab" * 32)
    seed.chmod(0o600)

    def settings(rpc_password: str, evm_key: str) -> Settings:
        return Settings.model_validate(
            {
                "node_id": NODE,
                "chains": {
                    "bitcoin": {"adapter": "bitcoin", "seed_file": str(seed), "rpc_password": rpc_password},
                    "evm": {"adapter": "evm", "private_key": evm_key},
                },
            }
        )

    same = keys_fingerprint(settings("one", "0x" + "11" * 32))
    assert len(same) == 64 and "ab" * 32 not in same
    assert keys_fingerprint(settings("another machine's node", "0x" + "11" * 32)) == same
    assert keys_fingerprint(settings("one", "0x" + "22" * 32)) != same
    seed.write_text("cd" * 32)
    assert keys_fingerprint(settings("one", "0x" + "11" * 32)) != same


async def test_a_second_process_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "one.sqlite3"
    first, second = await Store.open(str(path)), await Store.open(str(path))
    try:
        one = replica(first)
        await one.admit()
        assert one.role == SINGLE
        with pytest.raises(ReplicaRefused, match=r"in use by another settlerd process \(pid \d+\).*Postgre"):
            await replica(second).admit()
        await one.lead("http://one")  # no lease on SQLite: the one process acts at once
        assert one.role == SINGLE and one.token is None
        one.close()
        await replica(second).admit()  # the first process gone, the file is free again
    finally:
        await first.close()
        await second.close()


async def test_the_doctor_shows_the_replica_set(pg_url: str, stores: list[Store]) -> None:
    leader = await admitted(stores[0])
    await leader.lead("http://leader:8480")
    # Another machine's replica, as PostgreSQL sees its sessions.
    other = await asyncpg.connect(pg_url, server_settings={"application_name": "settlerd standby-host/42"})
    try:
        diagnosis = await diagnose_store(pg_url)
    finally:
        await other.close()
    assert diagnosis.engine is not None
    await diagnosis.engine.dispose()
    found = next(c for c in diagnosis.checks if c.name == "store.replicas")
    assert found.status is CheckStatus.OK, found
    assert f"node desk: leader {leader.holder} (API http://leader:8480), fencing token 1" in found.detail
    assert "connected: standby-host/42" in found.detail

    await asyncio.sleep(LEASE.total_seconds() * 1.5)  # the leader stopped renewing: nobody leads
    diagnosis = await diagnose_store(pg_url)
    assert diagnosis.engine is not None
    await diagnosis.engine.dispose()
    found = next(c for c in diagnosis.checks if c.name == "store.replicas")
    assert found.status is CheckStatus.WARN and "expired" in found.detail, found
