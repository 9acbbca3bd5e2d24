"""Files are private: the database (live preimages), its -wal and -shm files and the log are created mode
0600 whatever the umask, and an existing one other users can read is warned about at start."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from settlerd import logs
from settlerd.store import Store

from .daemon import running_daemon
from .swaps import create_swap


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


async def test_the_database_and_its_side_files_are_private(tmp_path: Path, umask: int) -> None:
    db = tmp_path / "private.sqlite3"
    store = await Store.open(f"sqlite:///{db}")
    try:
        await create_swap(store, "secretive")  # writes: the -wal and -shm files exist now
        files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        await store.close()


async def test_a_daemon_started_under_umask_022_keeps_its_database_private(
    tmp_path: Path, umask: int
) -> None:
    async with running_daemon(tmp_path, "private") as daemon:
        assert mode(daemon.db) == 0o600
        assert mode(daemon.db.with_name(daemon.db.name + "-wal")) == 0o600
        assert "readable" not in daemon.log() and "mode 0" not in daemon.log()


async def test_an_existing_database_others_can_read_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "shared.sqlite3"
    store = await Store.open(f"sqlite:///{db}")
    await store.close()
    db.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="settlerd.store"):
        store = await Store.open(f"sqlite:///{db}")
        await store.close()
    assert f"{db} is mode 0644" in caplog.text and "chmod 600" in caplog.text
    assert mode(db) == 0o644  # warned about, not changed behind the operator's back


def test_the_log_file_is_private_and_a_shared_one_is_warned_about(tmp_path: Path, umask: int) -> None:
    created = tmp_path / "settlerd.log"
    control = logs.setup_logging("info", file=created)
    try:
        logging.getLogger("settlerd.test").info("written")
        assert mode(created) == 0o600 and "written" in created.read_text()
        assert "mode" not in created.read_text()
        created.rename(tmp_path / "settlerd.log.1")
        control.reopen()  # after logrotate: the fresh file is private too
        assert mode(created) == 0o600
    finally:
        control.close()

    shared = tmp_path / "shared.log"
    shared.touch()
    shared.chmod(0o644)
    control = logs.setup_logging("info", file=shared)
    control.close()
    assert "the log file is mode 0644" in shared.read_text()

    redirected = tmp_path / "stderr.log"  # `settlerd run 2>>stderr.log` from a shell
    with redirected.open("a") as stream:
        redirected.chmod(0o640)
        control = logs.setup_logging("info", stream=stream)
        control.close()
    assert "the log file is mode 0640" in redirected.read_text()
