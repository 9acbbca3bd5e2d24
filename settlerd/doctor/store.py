"""Store checks: the database opens, its schema version, a rolled-back write, and durability settings.

The doctor never migrates or creates the database (``settlerd run`` does): it opens its own engine, reads,
writes one row inside a transaction and rolls it back. The same engine then serves the adapters' read-only
view of their cursors (``CursorReader``), so a wallet balance comes from what the daemon last saved.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from settlerd.adapters import Check, CheckStatus, SignedTx
from settlerd.store import LATEST_VERSION, StoreError, lease
from settlerd.store import schema as t
from settlerd.store.connect import APPLICATION_PREFIX, BEGIN_OPTION, Target, create_engine, parse

FIX_URL = "point store.url at a database settlerd may write (sqlite:///PATH or postgresql://USER@HOST/DB)"
PROBE_CHAIN = "settlerd-doctor"  # the cursor row the write probe inserts, never committed
REPLICAS_SINCE_VERSION = 3  # the schema version that added the lease row


class CursorReader:
    """The ``AdapterStore`` an adapter gets during a diagnosis: reads cursors, refuses every write."""

    def __init__(self, engine: AsyncEngine | None) -> None:
        self._engine = engine

    async def get_cursor(self, chain: str, key: str) -> str | None:
        if self._engine is None:
            return None
        async with self._engine.connect() as conn:
            q = select(t.chain_cursors.c.value).where(
                t.chain_cursors.c.chain == chain, t.chain_cursors.c.key == key
            )
            value = (await conn.execute(q)).scalar()
        return str(value) if value is not None else None

    async def put_cursor(self, chain: str, key: str, value: str) -> None:
        raise StoreError("settlerd doctor does not write to the store")

    async def get_cursors(self, chain: str, prefix: str) -> dict[str, str]:
        if self._engine is None:
            return {}
        async with self._engine.connect() as conn:
            q = select(t.chain_cursors.c.key, t.chain_cursors.c.value).where(
                t.chain_cursors.c.chain == chain, t.chain_cursors.c.key.startswith(prefix, autoescape=True)
            )
            return {str(key): str(value) for key, value in await conn.execute(q)}

    async def put_cursors(self, chain: str, changes: Mapping[str, str | None]) -> None:
        raise StoreError("settlerd doctor does not write to the store")

    async def unconfirmed_txs(self, chain: str) -> list[SignedTx]:
        return []

    async def unsent(self, chain: str) -> dict[str, bool]:
        return {}

    async def record_replacement(self, tx: SignedTx, replaces: str) -> None:
        raise StoreError("settlerd doctor does not write to the store")


@dataclass
class StoreDiagnosis:
    checks: list[Check]
    engine: AsyncEngine | None  # open when the schema is readable; the caller disposes of it


def _reason(exc: BaseException) -> str:
    inner = exc.orig if isinstance(exc, DBAPIError) else exc
    return " ".join(str(inner).split())


async def diagnose_store(url: str) -> StoreDiagnosis:
    try:
        target = parse(url)
    except StoreError as exc:
        return StoreDiagnosis([Check("store.open", CheckStatus.FAIL, str(exc), FIX_URL)], None)
    if target.sqlite_path is not None and not target.sqlite_path.exists():
        return StoreDiagnosis([_creatable(target.sqlite_path)], None)
    engine = create_engine(target)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
            checks = [Check("store.open", CheckStatus.OK, f"{engine.dialect.name} {target.where}")]
            version = await _schema_version(conn)
            checks.append(_schema(version))
            if version >= 1:
                checks.append(await _write_probe(conn))
            checks.append(await _durability(conn, target))
            if target.sqlite_path is None and version >= REPLICAS_SINCE_VERSION:
                checks.append(await _replicas(conn))
            await conn.rollback()
    except (DBAPIError, OSError, StoreError) as exc:
        await engine.dispose()
        found = f"{target.where}: cannot open or write: {_reason(exc)}"
        return StoreDiagnosis([Check("store.open", CheckStatus.FAIL, found, FIX_URL)], None)
    if version < 1:
        await engine.dispose()
        return StoreDiagnosis(checks, None)
    return StoreDiagnosis(checks, engine)


def _creatable(path: Path) -> Check:
    """A database file not there yet: ``settlerd run`` creates it, if a file can be made in its directory.

    Tried for real (and removed) because permission bits do not tell: root passes ``access()`` checks on
    directories where nothing can be created, such as a read-only mount or /proc.
    """
    probe = path.parent / f".{path.name}.doctor-{secrets.token_hex(4)}"
    try:
        probe.open("x").close()
        probe.unlink()
    except OSError as exc:
        found = f"{path} does not exist and no file can be created in {path.parent}: {exc.strerror or exc}"
        return Check("store.open", CheckStatus.FAIL, found, FIX_URL)
    return Check("store.open", CheckStatus.OK, f"{path} does not exist yet; `settlerd run` creates it")


async def _schema_version(conn: AsyncConnection) -> int:
    try:
        async with conn.begin_nested():
            found = (await conn.execute(select(func.max(t.schema_version.c.version)))).scalar()
    except (OperationalError, ProgrammingError):  # no schema_version table: never migrated
        return 0
    return int(found) if found is not None else 0


def _schema(version: int) -> Check:
    if version == LATEST_VERSION:
        return Check("store.schema", CheckStatus.OK, f"version {version}, the current one")
    if version > LATEST_VERSION:
        return Check(
            "store.schema",
            CheckStatus.FAIL,
            f"version {version}, newer than this settlerd's {LATEST_VERSION}",
            "run the settlerd release that migrated this database, or point store.url elsewhere",
        )
    return Check(
        "store.schema",
        CheckStatus.WARN,
        f"version {version}; `settlerd run` migrates it to {LATEST_VERSION} on start",
        "back the database up before the first start of this release",
    )


async def _write_probe(conn: AsyncConnection) -> Check:
    # Inside the caller's transaction, which is rolled back: the row never becomes visible.
    await conn.execute(insert(t.chain_cursors).values(chain=PROBE_CHAIN, key="write-probe", value="1"))
    return Check("store.write", CheckStatus.OK, "a write transaction was taken and rolled back")


async def _durability(conn: AsyncConnection, target: Target) -> Check:
    if target.sqlite_path is not None:
        mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
        sync = (await conn.execute(text("PRAGMA synchronous"))).scalar()
        found = f"journal_mode={mode}, synchronous={'FULL' if sync == 2 else sync}"
        if str(mode).lower() != "wal" or sync not in (2, 3):  # FULL or EXTRA
            return Check(
                "store.durability",
                CheckStatus.FAIL,
                found,
                "keep the database on a local filesystem that supports WAL (not a network share)",
            )
        return Check("store.durability", CheckStatus.OK, found)
    commit = (await conn.execute(text("SHOW synchronous_commit"))).scalar()
    found = f"synchronous_commit={commit}"
    if str(commit).lower() in ("off", "local"):
        return Check(
            "store.durability",
            CheckStatus.WARN,
            f"{found}: a crash or failover can lose swap states the daemon saw committed",
            "set synchronous_commit = on (or remote_apply) for settlerd's database role",
        )
    return Check("store.durability", CheckStatus.OK, found)


async def _replicas(conn: AsyncConnection) -> Check:
    """The replica set of a PostgreSQL store: the leader from the lease row, every replica connected."""
    state = await lease.read(conn)
    connected = sorted(
        str(name).removeprefix(APPLICATION_PREFIX)
        for name in (
            await conn.execute(
                text(
                    "SELECT DISTINCT application_name FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name LIKE :prefix "
                    "AND application_name <> current_setting('application_name')"
                ),
                {"prefix": APPLICATION_PREFIX + "%"},
            )
        ).scalars()
    )
    members = ", ".join(connected) or "none"
    if state is None or state.holder is None:
        return Check("store.replicas", CheckStatus.OK, f"no replica has led yet; connected: {members}")
    left = (state.expires_at - state.now).total_seconds() if state.expires_at else 0.0
    found = (
        f"node {state.node_id}: leader {state.holder} (API {state.api_url}), fencing token {state.token}, "
        f"lease {'expires in' if left > 0 else 'expired'} {abs(left):.1f} s{'' if left > 0 else ' ago'}; "
        f"connected: {members}"
    )
    if left <= 0:
        return Check(
            "store.replicas",
            CheckStatus.WARN,
            found,
            "no leader: start a replica (same node_id, keys and store.url); a standby takes over by itself",
        )
    return Check("store.replicas", CheckStatus.OK, found)
