"""MQTT test harness: settings for a unique node id, a subscriber that keeps every message, the publisher
as a task, and a private Mosquitto that a test may stop and restart."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from settlerd import notify
from settlerd.config import MqttSettings, Settings, StoreSettings
from settlerd.engine import NodeKey
from settlerd.store import Store

MOSQUITTO = "/usr/sbin/mosquitto"
REPO = Path(__file__).resolve().parents[3]
SHIPPED_CONFIG = REPO / "config" / "mosquitto"
SHIPPED_DIR = "/etc/mosquitto/settlerd/"  # where the shipped configuration expects its files
SHARED_BROKER = ("127.0.0.1", 1883)
WAIT_S = 30.0  # upper bound for anything that should happen; a stuck test fails instead of hanging


def unique_node_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"  # topics on the shared broker never collide


def settings_for(node_id: str, db: Path, port: int = SHARED_BROKER[1]) -> Settings:
    return Settings(
        node_id=node_id,
        store=StoreSettings(url=f"sqlite:///{db}"),
        mqtt=MqttSettings(host="127.0.0.1", port=port),
    )


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """Collects every message on ``topic``; reconnects (keeping its broker session) when the broker goes."""

    def __init__(self, port: int, topic: str, *, persistent: bool = False, **client: Any) -> None:
        self.client = client  # more aiomqtt.Client arguments: credentials, TLS
        self.port = port
        self.topic = topic
        self.persistent = persistent
        self.identifier = f"sub-{uuid.uuid4().hex[:12]}"
        self.messages: list[Received] = []
        self.subscribed = asyncio.Event()
        self._arrived = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.port,
                    identifier=self.identifier,
                    clean_session=not self.persistent,
                    **self.client,
                ) as client:
                    await client.subscribe(self.topic, qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        self.messages.append(
                            Received(str(message.topic), bytes(message.payload), message.retain)
                        )  # type: ignore[arg-type]
                        self._arrived.set()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    async def wait_until(self, done: Callable[[list[Received]], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not done(self.messages):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"subscriber never saw {what}; got {len(self.messages)} messages"
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    def on(self, topic: str) -> list[Received]:
        return [m for m in self.messages if m.topic == topic]


async def wait_for_cursor(store: Store, seq: int) -> None:
    """Until the publisher has stored ``seq`` as acknowledged by the broker."""
    async with asyncio.timeout(WAIT_S):
        # The cursor lives in the database, so there is no event to wait on: poll it.
        while await notify.acked_seq(store) < seq:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(coro: Any, name: str) -> AsyncIterator[asyncio.Task[Any]]:
    task = asyncio.create_task(coro, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def subscribed(
    port: int, topic: str, *, persistent: bool = False, **client: Any
) -> AsyncIterator[Subscriber]:
    subscriber = Subscriber(port, topic, persistent=persistent, **client)
    async with running(subscriber.run(), f"subscriber {topic}"):
        await asyncio.wait_for(subscriber.subscribed.wait(), WAIT_S)
        yield subscriber


@contextlib.asynccontextmanager
async def publishing(
    store: Store, settings: Settings, key: NodeKey | None = None
) -> AsyncIterator[asyncio.Event]:
    wakeup = asyncio.Event()
    async with running(notify.run(store, settings, wakeup, key=key), "mqtt-publisher"):
        yield wakeup


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite:///{tmp_path / 'notify.sqlite3'}")
    yield opened
    await opened.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """A broker of our own, with persistence so a restart keeps the subscriber's session and queue."""

    def __init__(self, directory: Path, port: int, extra: str = "") -> None:
        self.port = port
        self.config = directory / "mosquitto.conf"
        self.log = directory / "mosquitto.log"
        (directory / "data").mkdir()
        self.config.write_text(
            # As root, mosquitto would switch to its own user, who cannot read the test's directory.
            f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\npersistence true\n"
            f"persistence_location {directory / 'data'}/\nlog_dest file {self.log}\n{extra}"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + WAIT_S
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert self.process.poll() is None, f"mosquitto exited: {self.log.read_text()}"
            assert time.monotonic() < deadline, "mosquitto did not start listening"
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its sessions and queued messages, as a broker restart does."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(WAIT_S)
        self.process = None


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    directory = tmp_path / "broker"
    directory.mkdir()
    broker = Mosquitto(directory, free_port(), "allow_anonymous true\n")
    broker.start()
    try:
        yield broker
    finally:
        if broker.process is not None:
            broker.process.kill()
            broker.process.wait()


async def clear_retained(port: int, node_id: str, swap_ids: list[str]) -> None:
    """Leave the shared broker as we found it: an empty retained message deletes the retained one."""
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for topic in [notify.online_topic(node_id), *(notify.swap_topic(node_id, s) for s in swap_ids)]:
            await client.publish(topic, b"", qos=1, retain=True)


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(pki: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 signed by it: ca.crt, server.crt, server.key."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-subj", "/CN=settlerd test CA", "-days", "1", cwd=pki)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1", cwd=pki)  # fmt: skip
    (pki / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "1", "-extfile", "san.ext", cwd=pki)  # fmt: skip


def shipped_broker(tmp_path: Path, passwords: dict[str, str]) -> Mosquitto:
    """A private Mosquitto running the operator configuration of config/mosquitto as shipped: its files
    (ACL, a password file made with mosquitto_passwd, a certificate made here) in a directory of the test,
    and the test's listener in place of port 8883."""
    files = tmp_path / "etc"
    files.mkdir()
    make_pki(files)
    (files / "acl").write_text((SHIPPED_CONFIG / "settlerd.acl").read_text())
    for user, password in passwords.items():
        create = ["-c"] if not (files / "passwd").exists() else []
        subprocess.run(["mosquitto_passwd", *create, "-b", str(files / "passwd"), user, password], check=True)
    shipped = (SHIPPED_CONFIG / "settlerd.conf").read_text().replace(SHIPPED_DIR, f"{files}/")
    assert "\nlistener 8883\n" in shipped, "the shipped configuration changed its listener: update the test"
    directory = tmp_path / "broker"
    directory.mkdir()
    return Mosquitto(directory, free_port(), shipped.replace("\nlistener 8883\n", "\n"))
