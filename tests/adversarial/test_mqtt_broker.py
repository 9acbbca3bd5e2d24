"""Attacks through the MQTT broker: a stranger, another node or a venue forging a node's status, and a
stranger taking the publisher's client id to knock it off and flap `online`.

On the operator configuration shipped in config/mosquitto (real TLS, passwords, ACL) a forgery never reaches
a venue; on an open broker it does, and the signature is what gives it away.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from settlerd import notify
from settlerd.config import MqttSettings, Settings, StoreSettings
from settlerd.engine import NodeKey
from settlerd.status.signature import ForgedMessage, verify_message
from settlerd.store import Store
from tests.integration.api.swaps import advance, create_swap
from tests.integration.notify.conftest import (
    WAIT_S,
    Mosquitto,
    own_broker,
    publishing,
    settings_for,
    shipped_broker,
    store,
    subscribed,
    unique_node_id,
)

__all__ = ["own_broker", "store"]  # fixtures, used by name

NODE, OTHER_NODE, VENUE = "desk-a", "desk-b", "venue-a"  # users of the shipped ACL
PASSWORDS = {NODE: "node a secret", OTHER_NODE: "node b secret", VENUE: "venue secret"}
NODE_KEY = NodeKey.from_hex("42" * 32)
ATTACKER_KEY = NodeKey.from_hex("66" * 32)


@pytest.fixture
def operator_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = shipped_broker(tmp_path, PASSWORDS)
    broker.start()
    try:
        yield broker
    finally:
        if broker.process is not None:
            broker.process.kill()
            broker.process.wait()


def tls(tmp_path: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tmp_path / "etc" / "ca.crt"))


def forged_status(swap_id: str) -> bytes:
    return json.dumps({"id": swap_id, "status": "completed", "terminal": True, "seq": 10**9}).encode()


async def test_anonymous_client_is_refused_by_the_shipped_configuration(
    tmp_path: Path, operator_broker: Mosquitto
) -> None:
    with pytest.raises(aiomqtt.MqttCodeError, match=r"[Nn]ot authori[sz]ed"):
        async with aiomqtt.Client(
            "127.0.0.1", operator_broker.port, tls_context=tls(tmp_path), timeout=WAIT_S
        ):
            pass


async def test_another_node_or_a_venue_cannot_publish_under_a_nodes_prefix(
    store: Store, tmp_path: Path, operator_broker: Mosquitto
) -> None:
    password_file = tmp_path / "mqtt-password"
    password_file.write_text(PASSWORDS[NODE])
    password_file.chmod(0o600)
    settings = Settings(
        node_id=NODE,
        store=StoreSettings(url=f"sqlite:///{tmp_path / 'notify.sqlite3'}"),
        mqtt=MqttSettings(
            host="127.0.0.1",
            port=operator_broker.port,
            username=NODE,
            password_file=password_file,
            tls=True,
            ca_file=tmp_path / "etc" / "ca.crt",
        ),
    )
    venue = {"username": VENUE, "password": PASSWORDS[VENUE], "tls_context": tls(tmp_path)}
    target = notify.swap_topic(NODE, "victim")
    async with subscribed(operator_broker.port, f"settlerd/v1/{NODE}/#", **venue) as sub:
        await create_swap(store, "victim")
        async with publishing(store, settings, NODE_KEY) as wakeup:
            await sub.wait_until(lambda ms: any(m.topic == target for m in ms), "the node's own status")
            for user in (OTHER_NODE, VENUE):
                async with aiomqtt.Client(
                    "127.0.0.1",
                    operator_broker.port,
                    username=user,
                    password=PASSWORDS[user],
                    tls_context=tls(tmp_path),
                    timeout=WAIT_S,
                ) as attacker:
                    await attacker.publish(target, forged_status("victim"), qos=1, retain=True)
                    await attacker.publish(notify.online_topic(NODE), b"false", qos=1, retain=True)
                    await attacker.publish(notify.events_topic(NODE), b'{"seq": 1000000000}', qos=1)
            # The broker handles the forgeries (acknowledged above) before this event, which the node
            # publishes afterwards: once the venue has it, a forgery that got through would be there too.
            head = (await advance(store, "victim", 0)).seq
            wakeup.set()
            await sub.wait_until(
                lambda ms: any(m.topic == target and json.loads(m.payload)["seq"] == head for m in ms),
                "the node's next status",
            )
    assert all(
        verify_message(m.payload, NODE_KEY.public_hex, m.topic) for m in sub.messages if m.payload[:1] == b"{"
    )
    assert [m.payload for m in sub.messages if m.topic == notify.online_topic(NODE)] == [b"true", b"false"]

    # A venue arriving now finds the node's last status retained, not a forged one.
    async with subscribed(operator_broker.port, target, **venue) as late:
        await late.wait_until(lambda ms: len(ms) == 1, "the retained status")
    assert verify_message(late.messages[0].payload, NODE_KEY.public_hex, target)["status"] == "accepted"


async def test_a_stranger_taking_the_publishers_old_client_id_cannot_knock_it_off(
    store: Store, tmp_path: Path, own_broker: Mosquitto
) -> None:
    node = unique_node_id()
    settings = settings_for(node, tmp_path / "notify.sqlite3", own_broker.port)
    online = notify.online_topic(node)
    async with (
        subscribed(own_broker.port, f"settlerd/v1/{node}/#") as sub,
        publishing(store, settings) as wakeup,
    ):
        await sub.wait_until(lambda ms: [m.payload for m in ms] == [b"true"], "online")
        for _ in range(3):
            async with aiomqtt.Client("127.0.0.1", own_broker.port, identifier=f"settlerd-{node}"):
                pass
        head = (await create_swap(store, "kept")).seq
        wakeup.set()
        await sub.wait_until(
            lambda ms: any(m.topic == notify.events_topic(node) and m.json()["seq"] == head for m in ms),
            "the next event",
        )
        assert [m.payload for m in sub.messages if m.topic == online] == [b"true"], "online flapped"


async def test_a_venue_verifying_signatures_rejects_forgeries_on_an_open_broker(
    store: Store, tmp_path: Path, own_broker: Mosquitto
) -> None:
    node = unique_node_id()
    settings = settings_for(node, tmp_path / "notify.sqlite3", own_broker.port)
    first, second = notify.swap_topic(node, "first"), notify.swap_topic(node, "second")
    async with subscribed(own_broker.port, f"settlerd/v1/{node}/swaps/+") as sub:
        await create_swap(store, "first")
        await create_swap(store, "second")
        async with publishing(store, settings, NODE_KEY):
            await sub.wait_until(lambda ms: len(ms) == 2, "both genuine statuses")
        genuine = {m.topic: m.payload for m in sub.messages}
        document = json.loads(genuine[first])
        forgeries = {
            "unsigned": {k: v for k, v in document.items() if k != "sig"} | {"status": "completed"},
            "altered": document | {"status": "completed"},
            "signed by another key": ATTACKER_KEY.sign(document | {"status": "completed"}),
            "attacker's sig field": {k: v for k, v in document.items() if k != "sig"}
            | {"sig": ATTACKER_KEY.sign(document | {"status": "completed"})["signature"]},
        }
        async with aiomqtt.Client("127.0.0.1", own_broker.port) as attacker:
            for forged in forgeries.values():
                await attacker.publish(first, json.dumps(forged).encode(), qos=1, retain=True)
            # A genuine message replayed onto another swap's topic.
            await attacker.publish(second, genuine[first], qos=1, retain=True)
        await sub.wait_until(
            lambda ms: len(ms) == 2 + len(forgeries) + 1, "every forgery (the broker is open)"
        )
    for message in sub.messages[:2]:
        assert verify_message(message.payload, NODE_KEY.public_hex, message.topic)
    for message in sub.messages[2:]:
        with pytest.raises(ForgedMessage):
            verify_message(message.payload, NODE_KEY.public_hex, message.topic)
