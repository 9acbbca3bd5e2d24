"""`settlerd run` as a real process on free ports, for the CLI and crash tests."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    url: str
    db: Path
    config: Path
    read_token_file: Path
    trade_token: str = ""
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        # Private, as an operator's would be: the daemon warns about a log other users can read.
        log = os.open(self.config.with_suffix(".log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "settlerd", "run", "--config", str(self.config),
                stdout=asyncio.subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        finally:
            os.close(log)
        deadline = time.monotonic() + START_TIMEOUT_S
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(self.url + "/v1/health") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                assert self.process.returncode is None, f"settlerd exited: {self.log()}"
                assert time.monotonic() < deadline, f"settlerd did not answer: {self.log()}"
                await asyncio.sleep(0.1)

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
        self.process = None
        return code

    def log(self) -> str:
        return self.config.with_suffix(".log").read_text()

    async def cli(self, *args: str, token_file: Path | None = None) -> tuple[int, str, str]:
        """Run `settlerd swap ...` against this daemon; returns (exit code, stdout, stderr)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "settlerd", "swap", *args, "--api", self.url,
            "--token-file", str(token_file or self.read_token_file),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), START_TIMEOUT_S)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def running_daemon(
    tmp_path: Path,
    node_id: str,
    *,
    mqtt: bool = False,
    trading: bool = False,
    api: str = "",
    store_url: str | None = None,
) -> AsyncIterator[Daemon]:
    """``trading`` gives the daemon a node key, so trade routes are served (with no chain configured);
    ``api`` adds lines to its ``[api]`` table; ``store_url`` replaces its SQLite file."""
    port = free_port()
    read_token, trade_token = "venue-token-" + node_id, "desk-token-" + node_id
    token_file = tmp_path / "read.token"
    token_file.write_text(read_token + "\n")
    desk_tokens = tmp_path / "tokens.toml"  # the tokens_file form, for one of the two
    desk_tokens.write_text(_token_table("desk", "trade", trade_token))
    store_url = store_url or f"sqlite:///{tmp_path / 'daemon.sqlite3'}"
    engine = ""
    if trading:
        key_file = tmp_path / "node-key"
        key_file.write_text(hashlib.sha256(node_id.encode()).hexdigest() + "\n")
        key_file.chmod(0o600)
        engine = f'[engine]\nnode_key_file = "{key_file}"\n'
    config = tmp_path / "settlerd.toml"
    config.write_text(
        f'node_id = "{node_id}"\n[store]\nurl = "{store_url}"\n'
        f'[api]\nport = {port}\ntokens_file = "{desk_tokens}"\n{api}\n'
        f"{_token_table('venue', 'read', read_token, prefix='api.')}"
        f"[mqtt]\nenabled = {'true' if mqtt else 'false'}\n{engine}"
    )
    daemon = Daemon(f"http://127.0.0.1:{port}", tmp_path / "daemon.sqlite3", config, token_file, trade_token)
    await daemon.start()
    try:
        yield daemon
    finally:
        if daemon.process is not None:
            daemon.process.kill()
            await daemon.process.wait()


def _token_table(name: str, scope: str, token: str, prefix: str = "") -> str:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return f'[[{prefix}tokens]]\nname = "{name}"\nscope = "{scope}"\nsha256 = "{digest}"\n'
