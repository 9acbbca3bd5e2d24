"""Versioned schema migrations, applied in order on open, one transaction each.

Each migration is frozen history: it builds the tables as they were at its version with its own
``MetaData``, never from ``schema.py`` (which describes only the current version). A change to the
schema is a new entry at the end of ``MIGRATIONS`` plus the matching edit to ``schema.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from . import schema
from .errors import SchemaTooNew, StoreError
from .hashchain import GENESIS_HASH
from .timestamps import UtcDateTime, utcnow

# Taken (transaction-scoped) on PostgreSQL so two daemons starting together migrate one at a time.
PG_MIGRATION_LOCK_KEY = 0x5E77_1E4D


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _v1(conn: Connection) -> None:
    md = MetaData()
    Table(
        "swaps",
        md,
        Column("id", String(64), primary_key=True),
        Column("role", String(16), nullable=False),
        Column("status", String(32), nullable=False),
        Column("counterparty", String(128), nullable=False),
        Column("terms", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        Column("secret", LargeBinary, nullable=True),
        Index("ix_swaps_status", "status"),
        Index("ix_swaps_counterparty", "counterparty"),
        Index("ix_swaps_created_at", "created_at", "id"),
    )
    Table(
        "legs",
        md,
        Column("swap_id", String(64), ForeignKey("swaps.id"), primary_key=True),
        Column("leg", Integer, primary_key=True, autoincrement=False),
        Column("chain", String(64), nullable=False),
        Column("asset", String(128), nullable=False),
        Column("amount", String(78), nullable=False),
        Column("hashlock", String(64), nullable=False),
        Column("sender", String(128), nullable=False),
        Column("recipient", String(128), nullable=False),
        Column("timelock", BigInteger, nullable=False),
        Column("htlc_id", String(160), nullable=True),
        Column("lock_txid", String(80), nullable=True),
        Column("claim_txid", String(80), nullable=True),
        Column("refund_txid", String(80), nullable=True),
        Column("confirmations", Integer, nullable=False),
        Column("final", Boolean, nullable=False),
        Column("deadline", UtcDateTime, nullable=True),
        Index("ix_legs_hashlock", "hashlock"),
    )
    Table(
        "signed_txs",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("chain", String(64), nullable=False),
        Column("swap_id", String(64), ForeignKey("swaps.id"), nullable=True),
        Column("leg", Integer, nullable=True),
        Column("purpose", String(16), nullable=False),
        Column("txid", String(80), nullable=False),
        Column("raw", LargeBinary, nullable=False),
        Column("nonce", BigInteger, nullable=True),
        Column("meta", Text, nullable=False),
        Column("status", String(16), nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("broadcast_at", UtcDateTime, nullable=True),
        Column("confirmed_height", BigInteger, nullable=True),
        Column("replaces", String(80), nullable=True),
        UniqueConstraint("chain", "txid", name="uq_signed_txs_chain_txid"),
        Index("ix_signed_txs_chain_status", "chain", "status"),
        Index("ix_signed_txs_swap", "swap_id", "leg"),
    )
    Table(
        "chain_cursors",
        md,
        Column("chain", String(64), primary_key=True),
        Column("key", String(128), primary_key=True),
        Column("value", Text, nullable=False),
    )
    Table(
        "events",
        md,
        Column("seq", BigInteger, primary_key=True, autoincrement=False),
        Column("swap_id", String(64), nullable=True),
        Column("kind", String(64), nullable=False),
        Column("status", String(32), nullable=True),
        Column("payload", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
        Index("ix_events_swap_seq", "swap_id", "seq"),
    )
    head = Table(
        "event_chain_head",
        md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("seq", BigInteger, nullable=False),
        Column("hash", String(64), nullable=False),
    )
    md.create_all(conn, checkfirst=False)
    conn.execute(insert(head).values(id=schema.CHAIN_HEAD_ID, seq=0, hash=GENESIS_HASH))


def _v2(conn: Connection) -> None:
    # Acceptances raced past the old read-then-write check; such a pair must be settled by hand before
    # the constraint can hold, so it is named instead of being resolved by a guess.
    shared = conn.execute(
        text(
            "SELECT hashlock, leg, COUNT(*) FROM legs GROUP BY hashlock, leg HAVING COUNT(*) > 1 "
            "ORDER BY hashlock, leg"
        )
    ).all()
    if shared:
        hashlock = shared[0][0]
        swaps = conn.execute(
            text("SELECT DISTINCT swap_id FROM legs WHERE hashlock = :h ORDER BY swap_id"), {"h": hashlock}
        ).scalars()
        raise StoreError(
            f"{len(shared)} hashlock(s) back more than one swap (first: {hashlock} in swaps "
            f"{', '.join(swaps)}); let the previous settlerd end all but one of them, then delete the "
            "ended ones' legs rows and start again"
        )
    conn.execute(text("DROP INDEX ix_legs_hashlock"))  # the unique index leads with hashlock
    conn.execute(text("CREATE UNIQUE INDEX uq_legs_hashlock_leg ON legs (hashlock, leg)"))


def _v3(conn: Connection) -> None:
    md = MetaData()
    Table(
        "replica_lease",
        md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("node_id", String(64), nullable=False),
        Column("node_key", String(66), nullable=True),
        Column("holder", String(160), nullable=True),
        Column("token", BigInteger, nullable=False),
        Column("api_url", String(256), nullable=True),
        Column("acquired_at", UtcDateTime, nullable=True),
        Column("renewed_at", UtcDateTime, nullable=True),
        Column("expires_at", UtcDateTime, nullable=True),
    )
    md.create_all(conn, checkfirst=False)


def _v4(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE replica_lease ADD COLUMN keys_fingerprint VARCHAR(64)"))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "swaps, legs, signed transactions, chain cursors, hash-chained event log", _v1),
    Migration(2, "one swap per hashlock: unique (hashlock, leg) on legs", _v2),
    Migration(3, "replica_lease: the identity replicas share, the lease and fencing token", _v3),
    Migration(4, "replica_lease.keys_fingerprint: replicas must sign with the same wallet keys", _v4),
)
LATEST_VERSION = MIGRATIONS[-1].version


def _lock_for_migration(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK_KEY})


def _current_version(conn: Connection) -> int:
    found = conn.execute(select(func.max(schema.schema_version.c.version))).scalar()
    return int(found) if found is not None else 0


def _step(conn: Connection, where: str) -> bool:
    """Apply the next migration, if any; True when one was applied."""
    _lock_for_migration(conn)
    schema.schema_version.create(conn, checkfirst=True)
    current = _current_version(conn)
    if current > LATEST_VERSION:
        raise SchemaTooNew(
            f"{where}: database schema is version {current} but this settlerd knows up to "
            f"{LATEST_VERSION}; run the settlerd that migrated it, or a newer one"
        )
    pending = [m for m in MIGRATIONS if m.version > current]
    if not pending:
        return False
    migration = pending[0]
    try:
        migration.apply(conn)
    except StoreError as exc:
        raise StoreError(f"{where}: migration {migration.version} ({migration.description}): {exc}") from exc
    except Exception as exc:
        raise StoreError(
            f"{where}: migration {migration.version} ({migration.description}) failed: {exc}; "
            "is this a settlerd database?"
        ) from exc
    conn.execute(
        insert(schema.schema_version).values(
            version=migration.version, description=migration.description, applied_at=utcnow()
        )
    )
    return True


async def migrate(engine: AsyncEngine, where: str) -> int:
    """Bring the schema to ``LATEST_VERSION``; returns the version the database is at."""
    while True:
        async with engine.connect() as conn:
            await conn.execution_options(settlerd_begin="IMMEDIATE")
            async with conn.begin():
                applied = await conn.run_sync(_step, where)
        if not applied:
            return LATEST_VERSION
