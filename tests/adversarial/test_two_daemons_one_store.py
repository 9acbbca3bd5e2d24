"""Attack: a second `settlerd run` pointed at a store another process already drives.

Before replicas had a leader, two daemons on one PostgreSQL database both ran the engine, each free to
sign its own funding of the same leg from the shared wallet (two funding transactions: the loss S4
exists to prevent); two on one SQLite file did the same. Now the second one on PostgreSQL stands by (no
trade capture, no engine) until the first one's lease lapses, and the second on SQLite is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
NODE_KEY = "11" * 32
TOKEN = "two-daemons-token"
TOKEN_SHA256 = hashlib.sha256(TOKEN.encode()).hexdigest()
START_TIMEOUT_S = 30.0
LEASE_S = 3
TAKEOVER_TIMEOUT_S = LEASE_S + 20.0  # the lease lapsing, the next poll, a resume on a loaded machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(tmp_path: Path, name: str, url: str) -> tuple[Path, int]:
    port = free_port()
    home = tmp_path / name
    home.mkdir()
    key = home / "node-key"
    key.write_text(NODE_KEY)
    key.chmod(0o600)
    path = home / "settlerd.toml"
    path.write_text(
        f'node_id = "one-node"\n[store]\nurl = "{url}"\nlease = "{LEASE_S}s"\n[api]\nport = {port}\n'
        f'[[api.tokens]]\nname = "ops"\nscope = "admin"\nsha256 = "{TOKEN_SHA256}"\n'
        f'[mqtt]\nenabled = false\n[engine]\nnode_key_file = "{key}"\n'
    )
    return path, port


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def start(path: Path, started: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    log = (path.parent / "settlerd.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "settlerd", "run", "--config", str(path)],
        env={k: v for k, v in os.environ.items() if not k.startswith("SETTLERD_")},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    started.append(proc)
    return proc


def call(port: int, method: str, route: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{route}",
        method=method,
        data=b"{}" if method == "POST" else None,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def metrics(port: int) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return str(resp.read().decode())


def role_when_ready(port: int, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"exited {proc.returncode}"
        try:
            status, body = call(port, "GET", "/v1/ready")
            if status == 200:
                return str(body["replica"]["role"])
        except (urllib.error.URLError, ConnectionError):
            pass
        assert time.monotonic() < deadline, "not ready in time"
        time.sleep(0.1)


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"settlerd_two_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(f"{PG_SERVER}/test")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield f"{PG_SERVER}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.postgres
def test_a_second_daemon_on_one_postgresql_stands_by(
    tmp_path: Path, pg_url: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    first_config, first_port = config(tmp_path, "first", pg_url)
    second_config, second_port = config(tmp_path, "second", pg_url)
    first = start(first_config, processes)
    assert role_when_ready(first_port, first, START_TIMEOUT_S) == "leader"
    second = start(second_config, processes)
    assert role_when_ready(second_port, second, START_TIMEOUT_S) == "standby"

    # /v1/ready and /metrics say who leads, with what token, and how fresh the lease is.
    leading = call(first_port, "GET", "/v1/ready")[1]["replica"]
    assert leading["fencing_token"] == 1 and 0 <= leading["lease_age_s"] < LEASE_S, leading
    assert call(second_port, "GET", "/v1/ready")[1]["replica"]["leader"]["api_url"] == (
        f"http://127.0.0.1:{first_port}"
    )
    assert 'settlerd_replica_role{role="leader"} 1.0' in metrics(first_port)
    assert "settlerd_replica_fencing_token 1.0" in metrics(first_port)
    assert 'settlerd_replica_role{role="standby"} 1.0' in metrics(second_port)

    # The standby captures no trade: it names the leader instead.
    status, body = call(second_port, "POST", "/v1/swaps")
    assert status == 503 and body["leader"] == f"http://127.0.0.1:{first_port}", body
    assert call(first_port, "POST", "/v1/swaps")[0] != 503

    # The leader dies: the standby takes over within the bound and trades.
    first.send_signal(signal.SIGKILL)
    first.wait()
    deadline = time.monotonic() + TAKEOVER_TIMEOUT_S
    while role_when_ready(second_port, second, START_TIMEOUT_S) != "leader":
        assert time.monotonic() < deadline, "the standby did not take over"
        time.sleep(0.2)
    assert call(second_port, "POST", "/v1/swaps")[0] != 503
    assert "settlerd_replica_fencing_token 2.0" in metrics(second_port)


def test_a_second_daemon_on_one_sqlite_file_is_refused(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    db = tmp_path / "one.sqlite3"
    first_config, first_port = config(tmp_path, "first", f"sqlite:///{db}")
    second_config, _ = config(tmp_path, "second", f"sqlite:///{db}")
    first = start(first_config, processes)
    assert role_when_ready(first_port, first, START_TIMEOUT_S) == "single"
    second = start(second_config, processes)
    assert second.wait(timeout=START_TIMEOUT_S) == 1
    last = (second_config.parent / "settlerd.log").read_text().strip().splitlines()[-1]
    assert f"database {db} is in use by another settlerd process (pid {first.pid})" in last, last
