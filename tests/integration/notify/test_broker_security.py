"""Broker address, credentials and TLS come from the configuration: a broker that demands all three."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from settlerd import notify
from settlerd.config import MqttSettings, Settings, StoreSettings
from settlerd.store import Store
from tests.integration.api.swaps import advance, create_swap

from .conftest import Mosquitto, free_port, make_pki, publishing, subscribed, unique_node_id, wait_for_cursor

USER, PASSWORD = "settlerd", "correct horse battery staple"


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    passwords = tmp_path / "broker-passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), USER, PASSWORD], check=True)
    directory = tmp_path / "broker"
    directory.mkdir()
    broker = Mosquitto(
        directory,
        free_port(),
        f"allow_anonymous false\npassword_file {passwords}\ncafile {pki / 'ca.crt'}\n"
        f"certfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n",
    )
    broker.start()
    try:
        yield broker
    finally:
        if broker.process is not None:
            broker.process.kill()
            broker.process.wait()


async def test_publisher_uses_configured_credentials_and_tls(
    store: Store, tmp_path: Path, secure_broker: Mosquitto
) -> None:
    ca = tmp_path / "pki" / "ca.crt"
    password_file = tmp_path / "mqtt-password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    node = unique_node_id()
    settings = Settings(
        node_id=node,
        store=StoreSettings(url=f"sqlite:///{tmp_path / 'notify.sqlite3'}"),
        mqtt=MqttSettings(
            host="127.0.0.1",
            port=secure_broker.port,
            username=USER,
            password_file=password_file,
            tls=True,
            ca_file=ca,
        ),
    )
    tls = ssl.create_default_context(cafile=str(ca))
    async with subscribed(
        secure_broker.port, notify.events_topic(node), username=USER, password=PASSWORD, tls_context=tls
    ) as sub:
        await create_swap(store, "secure")
        await advance(store, "secure", 0)
        async with publishing(store, settings):
            await sub.wait_until(lambda ms: len(ms) == 2, "both events over TLS")
            await wait_for_cursor(store, 2)  # the PUBACK can reach us after the subscriber's copy
    assert [m.json()["seq"] for m in sub.messages] == [1, 2]
    assert await notify.acked_seq(store) == 2
