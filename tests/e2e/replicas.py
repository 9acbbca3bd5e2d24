"""One node run as replicas on PostgreSQL, for the e2e failover tests and bench/failover.py.

A localnet daemon is started on SQLite to be funded, stopped, and its configuration copied into one
home per replica: same node id, keys and wallet seed, the store moved to a fresh PostgreSQL database
(one per run), each replica on its own API port. Each replica reaches PostgreSQL through a TCP proxy of
its own, so a test can cut one replica's database connections as a network fault would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import asyncpg
from localnet import ApiFailure, Daemon, Localnet, LocalnetError

from settlerd.store import Store
from tests.fixtures.bitcoin_node import free_port

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
PG_HOST, PG_PORT = "127.0.0.1", 5432
POLL_S = 0.1
LEADER_TIMEOUT_S = 60.0  # a takeover: the lease lapsing, the standby's next poll, its resume
EXIT_TIMEOUT_S = 30.0


class Proxy:
    """A TCP relay to PostgreSQL that can be cut (every connection reset, no new one accepted) and
    reopened on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(PG_HOST, PG_PORT)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._open.difference_update((writer, up_writer))


@dataclass
class ReplicaSet:
    net: Localnet
    base: Daemon
    url: str  # the database, reached directly
    replicas: list[Daemon] = field(default_factory=list)
    proxies: dict[str, Proxy] = field(default_factory=dict)

    @property
    def running(self) -> list[Daemon]:
        return [r for r in self.replicas if r.running]

    async def status(self, replica: Daemon) -> dict[str, Any] | None:
        """The replica's ``/v1/ready`` body (``replica`` says its role), or None when it does not answer."""
        if not replica.running:
            return None
        try:
            return await self.net.api(replica, "GET", "/v1/ready")  # type: ignore[no-any-return]
        except ApiFailure as exc:
            return exc.body if isinstance(exc.body, dict) else None
        except aiohttp.ClientError:
            return None

    async def leader(self, timeout: float = LEADER_TIMEOUT_S, not_: Daemon | None = None) -> Daemon:  # noqa: ASYNC109
        """The replica that leads and has resumed its swaps (waits for one)."""
        deadline = time.monotonic() + timeout
        while True:
            for replica in self.running:
                if replica is not_:
                    continue
                body = await self.status(replica)
                if body and body.get("ready") and body["replica"]["role"] == "leader":
                    return replica
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {r.name}:\n{r.log_tail(15)}" for r in self.replicas)
                raise LocalnetError(f"no leader among {[r.name for r in self.running]}:\n{tails}")
            await asyncio.sleep(POLL_S)

    async def reader(self) -> Daemon:
        """Any running replica: all serve the read API from the shared store."""
        for replica in self.running:
            if await self.status(replica) is not None:
                return replica
        raise LocalnetError("no replica answers")

    async def swap(self, swap_id: str) -> dict[str, Any]:
        return await self.net.swap(await self.reader(), swap_id)

    async def failover(self, victim: Daemon) -> tuple[Daemon, float]:
        """After ``victim`` (the leader) was killed or cut off: the new leader, and seconds until it led."""
        started = time.monotonic()
        new = await self.leader(not_=victim)
        return new, time.monotonic() - started

    async def wait_exit(self, replica: Daemon) -> int:
        assert replica.process is not None
        return await asyncio.wait_for(replica.process.wait(), EXIT_TIMEOUT_S)

    def pause(self, replica: Daemon) -> None:
        assert replica.process is not None
        os.kill(replica.process.pid, signal.SIGSTOP)

    def resume(self, replica: Daemon) -> None:
        assert replica.process is not None
        os.kill(replica.process.pid, signal.SIGCONT)

    async def locks(self, swap_id: str) -> list[tuple[int, str, str]]:
        """(leg, txid, status) of every lock the node journaled for the swap, fee bumps excluded."""
        async with await Store.open(self.url) as store:
            txs = await store.signed_txs(swap_id=swap_id)
        return [(t.leg or 0, t.txid, t.status.value) for t in txs if t.purpose == "lock"]

    async def event_head(self) -> int:
        async with await Store.open(self.url) as store:
            return (await store.chain_head()).seq

    async def stop_all(self) -> None:
        for replica in self.replicas:
            if replica.process is not None and replica.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(replica.process.pid, signal.SIGCONT)
            await self.net.stop(replica)
        for proxy in self.proxies.values():
            await proxy.cut()


@contextlib.asynccontextmanager
async def replica_set(net: Localnet, base: Daemon, count: int, lease: str) -> AsyncIterator[ReplicaSet]:
    """``count`` replicas of ``base`` (stopped here) on a fresh database, the first started first so it
    leads; the database is dropped on exit."""
    name = f"settlerd_replicas_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(f"{PG_SERVER}/test")
    await admin.execute(f'CREATE DATABASE "{name}"')
    await net.stop(base)
    replicas = ReplicaSet(net, base, f"{PG_SERVER}/{name}")
    try:
        config = base.config.read_text()
        for n in range(count):
            proxy = Proxy()
            await proxy.open()
            home = base.home.with_name(f"{base.name}-r{n}")
            home.mkdir(mode=0o700)
            shutil.copytree(base.secrets, home / "secrets")
            replica = replace(base, name=f"{base.name}-r{n}", home=home, api_port=free_port(), process=None)
            via_proxy = f"postgresql://postgres@127.0.0.1:{proxy.port}/{name}"
            text = re.sub(r'(?m)^url = ".*"$', f'url = "{via_proxy}"', config)
            text = text.replace("[store]\n", f'[store]\nlease = "{lease}"\n', 1)
            text = re.sub(r"(?m)^port = \d+$", f"port = {replica.api_port}", text, count=1)
            replica.config.write_text(text)
            replicas.replicas.append(replica)
            replicas.proxies[replica.name] = proxy
        await net.start(replicas.replicas[0])
        await replicas.leader()
        await asyncio.gather(*(net.start(r) for r in replicas.replicas[1:]))
        yield replicas
    finally:
        await replicas.stop_all()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
