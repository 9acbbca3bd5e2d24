"""`settlerd run` as systemd runs it: a real process, a real NOTIFY_SOCKET, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

# Generous bounds for a loaded two-core machine; the assertion on shutdown is the 5 s.
START_TIMEOUT_S = 20.0
STOP_LIMIT_S = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp_path: Path, db: Path, port: int) -> Path:
    path = tmp_path / "settlerd.toml"
    path.write_text(
        f'node_id = "lifecycle"\n[store]\nurl = "sqlite:///{db}"\n[api]\nport = {port}\n'
        "[mqtt]\nenabled = false\n"
    )
    return path


class NotifySocket:
    """The systemd side of sd_notify: a unix datagram socket collecting what the daemon says."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []

    def wait_for(self, field: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(field in m.split("\n") for m in self.messages):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {field} within {timeout}s; got {self.messages}")
            self.sock.settimeout(remaining)
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def collect(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self.sock.settimeout(remaining)
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                return

    def count(self, field: str) -> int:
        return sum(field in m.split("\n") for m in self.messages)


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.sock.close()


def start(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "settlerd", "run", "--config", str(config)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_ready_watchdog_and_clean_stop(tmp_path: Path, notify: NotifySocket, sig: signal.Signals) -> None:
    db = tmp_path / "settlerd.sqlite3"
    port = free_port()
    proc = start(
        write_config(tmp_path, db, port), {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000"}
    )
    try:
        notify.wait_for("READY=1", START_TIMEOUT_S)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=5) as resp:
            assert json.load(resp)["status"] == "ok"
        notify.wait_for("WATCHDOG=1", 2)
        pings = notify.count("WATCHDOG=1")
        notify.collect(0.5)
        assert notify.count("WATCHDOG=1") >= pings + 2, "a ping every 100 ms must keep coming"

        sent = time.monotonic()
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=STOP_LIMIT_S + 5)
        took = time.monotonic() - sent
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, stderr
    assert took < STOP_LIMIT_S
    notify.wait_for("STOPPING=1", 1)
    assert f"API http://127.0.0.1:{port}" in stderr
    assert "stopped cleanly" in stderr
    # Closed cleanly: the WAL was checkpointed into the main file and removed.
    assert not (tmp_path / "settlerd.sqlite3-wal").exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_no_watchdog_pings_unless_asked(tmp_path: Path, notify: NotifySocket) -> None:
    port = free_port()
    proc = start(write_config(tmp_path, tmp_path / "db.sqlite3", port), {"NOTIFY_SOCKET": str(notify.path)})
    try:
        notify.wait_for("READY=1", START_TIMEOUT_S)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=STOP_LIMIT_S + 5)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0
    assert notify.count("WATCHDOG=1") == 0


def run_to_exit(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "settlerd", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    )


def test_bad_database_path_fails_with_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "missing-dir" / "db.sqlite3", free_port())
    result = run_to_exit(config)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("settlerd: cannot start: store: ")
    assert "missing-dir" in lines[0]


def test_busy_api_port_fails_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = write_config(tmp_path, tmp_path / "db.sqlite3", busy.getsockname()[1])
        result = run_to_exit(config)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot start: api: cannot listen on 127.0.0.1:" in lines[0]


def test_invalid_config_exits_2_naming_fields(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('node_id = "x"\n[api]\nport = "eighty"\n')
    result = run_to_exit(path)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"{path}: api.port: Input should be a valid integer, unable to parse string as an integer"
    )


BTC_TABLE = '[chains.btc]\nadapter = "bitcoin"\nrpc_url = "http://127.0.0.1:1"\n'


def test_misspelt_adapter_setting_exits_2_with_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "db.sqlite3", free_port())
    config.write_text(config.read_text() + BTC_TABLE + 'seed_file = "seed"\nrpc_urll = "http://x"\n')
    result = run_to_exit(config)
    assert result.returncode == 2
    assert result.stderr.strip() == f"{config}: chains.btc.rpc_urll: unknown key"


def test_adapter_refusing_its_settings_at_start_up_exits_2_with_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "db.sqlite3", free_port())
    missing = tmp_path / "no-such-seed"
    config.write_text(config.read_text() + BTC_TABLE + f'seed_file = "{missing}"\n')
    result = run_to_exit(config)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"settlerd: cannot start: chain btc: seed_file {missing}: No such file or directory"
    )


def test_sighup_reloads_the_log_level_without_stopping(tmp_path: Path, notify: NotifySocket) -> None:
    port = free_port()
    config = write_config(tmp_path, tmp_path / "db.sqlite3", port)
    proc = start(config, {"NOTIFY_SOCKET": str(notify.path)})
    try:
        notify.wait_for("READY=1", START_TIMEOUT_S)
        config.write_text(config.read_text() + '[log]\nlevel = "debug"\n')
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=5) as resp:
            assert json.load(resp)["status"] == "ok", "SIGHUP must not stop the daemon"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=STOP_LIMIT_S + 5)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0
    lines = [json.loads(line) for line in stderr.splitlines()]  # JSON lines when not on a terminal
    assert any(line["msg"] == "log level changed from info to debug" for line in lines), stderr
