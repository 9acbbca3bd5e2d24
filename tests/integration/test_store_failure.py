"""A store that fails while the daemon runs: one line naming the database and the cause, never a traceback.

SQLite is made to run out of room with a file-size limit (the kernel refuses the WAL's growth, as a
full disk would); PostgreSQL by turning the database read-only, as after a fail-over to a replica.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from settlerd.store import Store
from tests.fixtures.postgres import admin, fresh_database

RUN_TIMEOUT_S = 60.0  # start, connect to the broker, publish one event, fail, stop
# Room for the migrated database and its WAL index, not for a few dozen more commits.
FILE_SIZE_LIMIT = 512 * 1024

FILL_UNTIL_FULL = """
import asyncio, resource, sys
from settlerd.store import Store, StoreError

async def main(path: str, limit: int) -> None:
    store = await Store.open(path)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        for i in range(10_000):
            async with store.write() as tx:
                await tx.append_event(None, "filler", None, {"i": i, "pad": "x" * 2000})
        print("never failed")
    except StoreError as exc:
        print(f"StoreError: {exc}")
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def test_a_full_sqlite_disk_is_a_store_error_naming_the_database(tmp_path: Path) -> None:
    db = tmp_path / "full.sqlite3"
    result = subprocess.run(
        [sys.executable, "-c", FILL_UNTIL_FULL, str(db), str(FILE_SIZE_LIMIT)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"StoreError: database {db}: write failed: "), result.stdout
    assert len(result.stdout.strip().splitlines()) == 1, result.stdout


@pytest.fixture
async def read_only_pg() -> AsyncIterator[str]:
    """A migrated database holding one event not yet published, then made read-only."""
    async with fresh_database("settlerd_failing") as url:
        async with await Store.open(url) as store, store.write() as tx:
            await tx.append_event(None, "note", None, {"why": "something for the publisher to send"})
        name = url.rsplit("/", 1)[1]
        await admin(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        yield url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.postgres
@pytest.mark.mqtt
async def test_the_daemon_stops_on_a_failing_store_with_one_line(tmp_path: Path, read_only_pg: str) -> None:
    config = tmp_path / "settlerd.toml"
    config.write_text(
        f'node_id = "store-fails-{uuid.uuid4().hex[:8]}"\n[store]\nurl = "{read_only_pg}"\n'
        f'[api]\nport = {free_port()}\n[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = 1883\n'
    )
    # Twice: the first run fails on its first write (a PostgreSQL replica's first is its claim of the
    # node's identity, at start), and so does a restart on the same store.
    for _ in range(2):
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "settlerd", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr and "Unclosed" not in result.stderr, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        first = f"settlerd: cannot start: store: database {read_only_pg}: lease failed: "
        assert last.startswith(first), last
        assert last.endswith("cannot execute INSERT in a read-only transaction"), last
