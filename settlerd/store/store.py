"""The store: opening, migrating and closing the database, reads, and the unit of work for writes."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..adapters import SignedTx
from ..swap.status import TERMINAL
from . import lease, queries
from . import schema as t
from .connect import BEGIN_OPTION, Target, create_engine, parse
from .errors import NotFound, StoreError
from .migrations import LATEST_VERSION, migrate
from .rows import UNCONFIRMED, ChainHead, Event, Leg, SignedTxRecord, Swap, TxStatus
from .writer import WriteTx

log = logging.getLogger(__name__)

DEFAULT_PAGE = 1000  # rows per page when a caller does not say
READ_BATCH = 100  # rows fetched and parsed between two turns of the event loop in a long read (~5 ms)


CLOSE_CHECKPOINT_WAIT_MS = 1000
_DRIVER_CLASS = re.compile(r"^<class '[\w.]+'>: ")


class Store:
    """Swaps, legs, the signed-transaction journal, chain cursors and the hash-chained event log.

    Writes go through ``async with store.write() as tx``: one transaction, one writer at a time in
    this process (an asyncio lock), and on SQLite ``BEGIN IMMEDIATE`` so another process cannot
    interleave; on PostgreSQL event appends are serialised by a row lock on the chain head.
    """

    def __init__(self, engine: AsyncEngine, target: Target) -> None:
        self._engine = engine
        self._target = target
        self._write_lock = asyncio.Lock()
        self._writer: asyncio.Task[object] | None = None
        self._closed = False
        self._fence: tuple[str, int] | None = None

    @classmethod
    async def open(cls, url: str) -> Self:
        """Open (creating if needed) and migrate the database; raises ``StoreError`` with one clear line."""
        target = parse(url)
        engine = create_engine(target)
        try:
            await migrate(engine, target.where)
        except StoreError:
            await engine.dispose()
            raise
        except (DBAPIError, OSError) as exc:
            await engine.dispose()
            reason = " ".join(str(exc.orig if isinstance(exc, DBAPIError) else exc).split())
            raise StoreError(f"database {target.where}: cannot open: {reason}") from exc
        return cls(engine, target)

    @property
    def where(self) -> str:
        """The database as messages name it (file path, or URL without password)."""
        return self._target.where

    @property
    def sqlite_path(self) -> Path | None:
        """The database file on SQLite; None on PostgreSQL."""
        return self._target.sqlite_path

    @property
    def backend(self) -> str:
        return self._engine.dialect.name

    def describe(self) -> str:
        """One line for the start-up log: backend and database, never a password."""
        return f"{self.backend} {self.where} (schema v{LATEST_VERSION})"

    async def close(self) -> None:
        """Checkpoint the SQLite WAL into the database file and close every connection."""
        if self._closed:
            return
        self._closed = True
        async with self._write_lock:
            if self._target.sqlite_path is not None:
                try:
                    async with self._engine.connect() as conn:
                        await conn.execution_options(**{BEGIN_OPTION: "NONE"})
                        # A reader left open (a task cancelled mid-query) would hold the checkpoint for
                        # the whole busy timeout; a shorter wait keeps the stop prompt, and SQLite
                        # replays an unchecked WAL on the next open anyway.
                        await conn.execute(text(f"PRAGMA busy_timeout = {CLOSE_CHECKPOINT_WAIT_MS}"))
                        await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
                except DBAPIError as exc:
                    # Not fatal: SQLite replays the WAL on the next open.
                    log.warning("database %s: WAL checkpoint on close failed: %s", self.where, exc.orig)
            await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _failed(self, doing: str, exc: DBAPIError | OSError) -> StoreError:
        """The database's own error as one line naming the database, for the operator."""
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        # asyncpg's errors arrive as "<class 'asyncpg.exceptions.X'>: message": the message is the news.
        text = _DRIVER_CLASS.sub("", " ".join(str(cause).split()))
        return StoreError(f"database {self.where}: {doing} failed: {text}")

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        if self._closed:
            raise StoreError(f"database {self.where}: store is closed")
        try:
            async with self._engine.connect() as conn:
                yield conn
        except (DBAPIError, OSError) as exc:
            raise self._failed("read", exc) from exc

    @asynccontextmanager
    async def write(self) -> AsyncIterator[WriteTx]:
        """One transaction: everything done through ``tx`` commits together, or nothing does.

        Writes are serial, so nothing inside the block may start another write (``put_cursor``, or an
        adapter call that persists a nonce): that would wait for itself, and is refused instead.
        """
        if self._closed:
            raise StoreError(f"database {self.where}: store is closed")
        task = asyncio.current_task()
        if task is not None and task is self._writer:
            raise StoreError("a store write was started inside another write; finish the first one")
        async with self._write_lock:
            try:
                async with self._engine.connect() as conn:
                    self._writer = task
                    await conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
                    async with conn.begin():
                        if self._fence is not None:
                            await lease.check_fence(conn, *self._fence)
                        yield WriteTx(conn)
            except (DBAPIError, OSError) as exc:
                raise self._failed("write", exc) from exc
            finally:
                self._writer = None

    def fence(self, holder: str, token: int) -> None:
        """From now on every write first checks that ``holder`` still leads with ``token`` (the
        leader's replicas on PostgreSQL): a journaled transaction or nonce never commits after a
        takeover, it fails with ``LeadershipLost``."""
        self._fence = (holder, token)

    @asynccontextmanager
    async def lease_tx(self) -> AsyncIterator[AsyncConnection]:
        """A short transaction on the lease row (``lease.py``), outside the writer lock so renewing the
        lease never waits behind this process's own writes."""
        if self._closed:
            raise StoreError(f"database {self.where}: store is closed")
        try:
            async with self._engine.connect() as conn, conn.begin():
                yield conn
        except (DBAPIError, OSError) as exc:
            raise self._failed("lease", exc) from exc

    # swaps and legs

    async def get_swap(self, swap_id: str) -> Swap | None:
        async with self._read() as conn:
            return await queries.get_swap(conn, swap_id)

    async def list_swaps(
        self,
        *,
        status: str | Collection[str] | None = None,
        counterparty: str | None = None,
        created_since: datetime | None = None,
        after: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> list[Swap]:
        """Swaps oldest first; pass the last id of a page as ``after`` for the next page."""
        async with self._read() as conn:
            return await queries.list_swaps(
                conn,
                status=status,
                not_status=None,
                counterparty=counterparty,
                created_since=created_since,
                after=after,
                limit=limit,
            )

    async def live_swaps(self, terminal: Collection[str]) -> list[Swap]:
        """Every swap whose status is not one of ``terminal`` (the state machine names those)."""
        async with self._read() as conn:
            return await queries.list_swaps(
                conn,
                status=None,
                not_status=terminal,
                counterparty=None,
                created_since=None,
                after=None,
                limit=None,
            )

    async def legs_of(self, swap_id: str) -> list[Leg]:
        async with self._read() as conn:
            return await queries.legs_of(conn, swap_id)

    async def legs_of_many(self, swap_ids: Collection[str]) -> dict[str, list[Leg]]:
        """The legs of a page of swaps in one query, by swap id."""
        async with self._read() as conn:
            return await queries.legs_of_many(conn, swap_ids)

    async def live_swap_logs(self, terminal: Collection[str]) -> list[tuple[Swap, bytes | None, list[Event]]]:
        """Every swap not in ``terminal`` with its preimage and its whole event log, for the engine's
        restore: two queries, however many swaps there are, not two per swap. Rows are fetched and
        parsed ``READ_BATCH`` at a time, so the event loop keeps serving while 100,000 swaps load."""
        live = t.swaps.c.status.not_in(list(terminal))
        swaps: list[tuple[Swap, bytes | None]] = []
        logs: dict[str, list[Event]] = {}
        async with self._read() as conn:
            q = select(*queries.SWAP_COLUMNS, t.swaps.c.secret).where(live)
            result = await conn.stream(q.order_by(t.swaps.c.created_at, t.swaps.c.id))
            async for rows in result.partitions(READ_BATCH):
                for row in rows:
                    swaps.append(
                        (queries.swap_from(row), bytes(row.secret) if row.secret is not None else None)
                    )
                    logs[row.id] = []
            q = select(t.events).join(t.swaps, t.swaps.c.id == t.events.c.swap_id).where(live)
            result = await conn.stream(q.order_by(t.events.c.seq))
            async for rows in result.partitions(READ_BATCH):
                for row in rows:
                    # A swap that became live between the two reads is left to the next restore.
                    kept = logs.get(row.swap_id)
                    if kept is not None:
                        kept.append(queries.event_from(row))
        return [(swap, secret, logs[swap.id]) for swap, secret in swaps]

    async def count_by_status(self) -> dict[str, int]:
        """How many swaps are in each status: one GROUP BY, however many swaps there are."""
        async with self._read() as conn:
            q = select(t.swaps.c.status, func.count()).group_by(t.swaps.c.status)
            return {str(status): int(n) for status, n in await conn.execute(q)}

    async def swaps_with_hashlock(self, hashlock: bytes) -> list[str]:
        """Every swap, live or ended, with a leg locked to ``hashlock`` (a hashlock is used once)."""
        async with self._read() as conn:
            q = select(t.legs.c.swap_id).where(t.legs.c.hashlock == hashlock.hex()).distinct()
            return [str(row[0]) for row in await conn.execute(q)]

    async def get_secret(self, swap_id: str) -> bytes | None:
        """The stored preimage. Callers hand it only to an adapter building a claim (S7)."""
        async with self._read() as conn:
            q = select(t.swaps.c.secret).where(t.swaps.c.id == swap_id)
            found = (await conn.execute(q)).scalar()
            return bytes(found) if found is not None else None

    # event log

    async def events(
        self, *, after_seq: int = 0, swap_id: str | None = None, limit: int | None = DEFAULT_PAGE
    ) -> list[Event]:
        async with self._read() as conn:
            return await queries.events(conn, after_seq=after_seq, swap_id=swap_id, limit=limit)

    async def chain_head(self) -> ChainHead:
        async with self._read() as conn:
            return await queries.chain_head(conn)

    # signed-transaction journal

    async def signed_txs(
        self,
        *,
        chain: str | None = None,
        swap_id: str | None = None,
        statuses: Collection[TxStatus] | None = None,
    ) -> list[SignedTxRecord]:
        async with self._read() as conn:
            return await queries.signed_txs(
                conn, chain=chain, swap_id=swap_id, statuses=None if statuses is None else list(statuses)
            )

    # AdapterStore

    async def get_cursor(self, chain: str, key: str) -> str | None:
        async with self._read() as conn:
            q = select(t.chain_cursors.c.value).where(
                t.chain_cursors.c.chain == chain, t.chain_cursors.c.key == key
            )
            value = (await conn.execute(q)).scalar()
            return str(value) if value is not None else None

    async def put_cursor(self, chain: str, key: str, value: str) -> None:
        async with self.write() as tx:
            await tx.put_cursor(chain, key, value)

    async def get_cursors(self, chain: str, prefix: str) -> dict[str, str]:
        async with self._read() as conn:
            q = select(t.chain_cursors.c.key, t.chain_cursors.c.value).where(
                t.chain_cursors.c.chain == chain, t.chain_cursors.c.key.startswith(prefix, autoescape=True)
            )
            return {str(key): str(value) for key, value in await conn.execute(q)}

    async def put_cursors(self, chain: str, changes: Mapping[str, str | None]) -> None:
        async with self.write() as tx:
            for key, value in changes.items():
                if value is None:
                    await tx.delete_cursor(chain, key)
                else:
                    await tx.put_cursor(chain, key, value)

    async def unconfirmed_txs(self, chain: str) -> list[SignedTx]:
        """Signed or broadcast but not yet confirmed, in the order they were signed (nonce order)."""
        records = await self.signed_txs(chain=chain, statuses=UNCONFIRMED)
        return [r.as_signed_tx() for r in records]

    async def unsent(self, chain: str) -> dict[str, bool]:
        """Transactions the engine journaled and never marked broadcast, whatever their status now, each
        with whether it is abandoned: still only signed while its swap has ended, so the engine will neither
        send nor replace it. Replacements (fee bumps, no-ops) are journaled by whoever then broadcasts
        them, so they are not among them."""
        c, s = t.signed_txs.c, t.swaps.c
        q = (
            select(c.txid, c.status, s.status)
            .select_from(t.signed_txs.outerjoin(t.swaps, c.swap_id == s.id))
            .where(c.chain == chain, c.broadcast_at.is_(None), c.replaces.is_(None))
        )
        ended = {status.value for status in TERMINAL}
        async with self._read() as conn:
            return {
                str(txid): tx_status == TxStatus.SIGNED.value and swap_status in ended
                for txid, tx_status, swap_status in await conn.execute(q)
            }

    async def record_replacement(self, tx: SignedTx, replaces: str) -> None:
        """Journal a fee bump under the swap and leg of the transaction it replaces (before broadcast)."""
        async with self._read() as conn:
            q = select(t.signed_txs.c.swap_id, t.signed_txs.c.leg).where(
                t.signed_txs.c.chain == tx.chain, t.signed_txs.c.txid == replaces
            )
            found = (await conn.execute(q)).first()
        if found is None:
            raise NotFound(
                f"{tx.chain}: {tx.txid} would replace {replaces}, which is not in the journal; "
                "only journaled transactions may be replaced"
            )
        async with self.write() as w:
            await w.record_signed_tx(tx, found.swap_id, found.leg, replaces=replaces)
