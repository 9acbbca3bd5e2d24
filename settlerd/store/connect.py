"""From a configured database URL to an async engine set up for durability.

SQLite: every connection gets WAL, synchronous=FULL (a committed swap state survives power loss),
foreign keys and a busy timeout; SQLAlchemy, not the sqlite3 module, emits BEGIN, so a write
transaction starts with ``BEGIN IMMEDIATE`` and takes the write lock before it reads anything.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .errors import StoreError

log = logging.getLogger("settlerd.store")

# A second process holding the write lock (another daemon, a backup, the audit) is waited for this
# long before a write fails; long enough to ride out a checkpoint, short enough to surface a stuck peer.
SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_HEADER = b"SQLite format 3\x00"
# A PostgreSQL server that does not answer fails start-up after this long instead of asyncpg's 60 s.
PG_CONNECT_TIMEOUT_S = 10
# A transaction left open by a process that stopped answering (SIGSTOP, a hung VM) is ended by the server
# after this long, releasing its row locks (lease row, event chain head): well inside the lease, so a
# paused leader never holds up the standby's takeover.
PG_IDLE_IN_TRANSACTION_TIMEOUT_MS = 5000

# The database holds live preimages: only its owner may read it. SQLite gives the -wal and -shm files
# it creates the database file's mode, so creating that one private covers all three.
PRIVATE_MODE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm")

# PostgreSQL sessions are named after the process (``pg_stat_activity.application_name``), so the doctor
# lists the replicas connected to one database; a replica's lease holder name starts the same way.
APPLICATION_PREFIX = "settlerd "

# Execution option naming how the SQLite begin hook opens a transaction.
BEGIN_OPTION = "settlerd_begin"


@dataclass(frozen=True, slots=True)
class Target:
    url: URL
    where: str  # how messages name the database: a file path or the URL without password
    sqlite_path: Path | None


def parse(url: str) -> Target:
    """``sqlite:///path``, a plain file path, or ``postgresql://...``."""
    if "://" not in url:
        return _sqlite_target(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"database URL {url!r} is not valid: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_target(parsed.database or "")
    if backend in ("postgresql", "postgres"):
        pg = parsed.set(drivername="postgresql+asyncpg")
        return Target(pg, parsed.render_as_string(hide_password=True), None)
    raise StoreError(
        f"database URL {parsed.render_as_string(hide_password=True)!r}: unsupported backend "
        f"{backend!r}; use sqlite:///PATH, a file path, or postgresql://USER@HOST/DB"
    )


def _sqlite_target(path_text: str) -> Target:
    if path_text in ("", ":memory:") or path_text.startswith("file:"):
        raise StoreError(
            f"database {path_text or '(no path)'}: settlerd needs a database file "
            "(an in-memory database would lose every swap on restart); give a file path"
        )
    path = Path(path_text).expanduser()
    check_sqlite_path(path)
    url = URL.create("sqlite+aiosqlite", database=str(path))
    return Target(url, str(path), path)


def check_sqlite_path(path: Path) -> None:
    """Fail early, naming the path, instead of SQLite's "unable to open database file"."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise StoreError(f"database {path}: directory {parent} does not exist; create it or fix the path")
    if not parent.is_dir():
        raise StoreError(f"database {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(
            f"database {path}: directory {parent} is not writable by this user "
            "(SQLite needs it for the WAL file)"
        )
    if not path.exists():
        return
    if not path.is_file():
        raise StoreError(f"database {path}: is not a regular file")
    if not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(f"database {path}: file is not readable and writable by this user")
    with path.open("rb") as f:
        header = f.read(len(SQLITE_HEADER))
    if header and header != SQLITE_HEADER:
        raise StoreError(f"database {path}: file exists but is not an SQLite database; check the path")


def create_engine(target: Target) -> AsyncEngine:
    if target.sqlite_path is None:
        return create_async_engine(
            target.url,
            pool_pre_ping=True,
            connect_args={
                "timeout": PG_CONNECT_TIMEOUT_S,
                "server_settings": {
                    "idle_in_transaction_session_timeout": str(PG_IDLE_IN_TRANSACTION_TIMEOUT_MS),
                    "application_name": f"{APPLICATION_PREFIX}{process_name()}",
                },
            },
        )
    private_database(target.sqlite_path)
    engine = create_async_engine(target.url)
    event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return engine


def process_name() -> str:
    """This process as the replicas and the doctor name it: host and pid."""
    return f"{socket.gethostname()}/{os.getpid()}"


def private_database(path: Path) -> None:
    """Create the database file mode 0600 whatever the umask; warn when an existing one is not private."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        for file in (path, *(path.with_name(path.name + suffix) for suffix in SQLITE_SIDE_FILES)):
            warn_if_shared(file, "the database (it holds live preimages)")
        return
    except OSError as exc:
        raise StoreError(f"database {path}: cannot create ({exc.strerror or exc})") from None
    try:
        os.fchmod(fd, PRIVATE_MODE)  # a umask can only take bits away; this also undoes an odd one
    finally:
        os.close(fd)


def warn_if_shared(path: Path, what: str) -> None:
    """Log a warning when ``path`` exists and its group or other users have any access to it."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o077:
        log.warning(
            "%s is mode %04o: other users of this machine can read %s; run chmod 600 %s",
            path,
            mode,
            what,
            path,
        )


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Hand transaction control to SQLAlchemy so the begin hook decides DEFERRED or IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        mode = cursor.fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(
                f"SQLite refused WAL journal mode (got {mode!r}); is the file on a network share?"
            )
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
    if mode != "NONE":
        conn.exec_driver_sql(f"BEGIN {mode}")
