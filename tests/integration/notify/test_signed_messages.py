"""Signed MQTT messages end to end: what the publisher sends verifies by the scheme docs/api.md specifies,
`settlerd verify-status` says so; and ended swaps' retained status is cleared after a short retention."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import coincurve

from settlerd import notify
from settlerd.config import MqttSettings, Settings, StoreSettings
from settlerd.engine import NodeKey
from settlerd.status.signature import verify_message
from settlerd.store import Store
from tests.integration.api.swaps import HAPPY_PATH, advance, create_swap

from .conftest import Mosquitto, Received, publishing, settings_for, subscribed, unique_node_id

NODE_KEY = NodeKey.from_hex("42" * 32)


def documented_verify(payload: bytes, public_hex: str) -> bool:
    """docs/api.md's recipe, written from the text alone: drop `sig`, canonical JSON (keys sorted, no
    spaces, UTF-8), SHA-256, then ECDSA secp256k1 with the DER signature."""
    message: dict[str, Any] = json.loads(payload)
    sig = bytes.fromhex(message.pop("sig"))
    canonical = json.dumps(message, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    digest = hashlib.sha256(canonical).digest()
    return coincurve.PublicKey(bytes.fromhex(public_hex)).verify(sig, digest, hasher=None)


async def test_every_message_is_signed_for_its_topic(
    store: Store, tmp_path: Path, own_broker: Mosquitto
) -> None:
    node = unique_node_id()
    settings = settings_for(node, tmp_path / "notify.sqlite3", own_broker.port)
    async with subscribed(own_broker.port, f"settlerd/v1/{node}/#") as sub:
        await create_swap(store, "signed")
        for step in range(3):
            await advance(store, "signed", step)
        async with publishing(store, settings, NODE_KEY):
            await sub.wait_until(lambda ms: len(ms) == 1 + 4 * 2, "online, then a status and an event each")
    signed = [m for m in sub.messages if m.topic != notify.online_topic(node)]
    for message in signed:
        assert documented_verify(message.payload, NODE_KEY.public_hex)
        assert verify_message(message.payload, NODE_KEY.public_hex, message.topic)["topic"] == message.topic
    assert {m.topic for m in signed} == {notify.events_topic(node), notify.swap_topic(node, "signed")}


def verify_cli(payload: bytes, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "settlerd", "verify-status", *args],
        input=payload.decode(),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_verify_status_cli(store: Store, tmp_path: Path, own_broker: Mosquitto) -> None:
    node = unique_node_id()
    settings = settings_for(node, tmp_path / "notify.sqlite3", own_broker.port)
    topic = notify.swap_topic(node, "cli")
    async with subscribed(own_broker.port, topic) as sub:
        await create_swap(store, "cli")
        async with publishing(store, settings, NODE_KEY):
            await sub.wait_until(lambda ms: len(ms) == 1, "the status")
    genuine = sub.messages[0].payload
    key = NODE_KEY.public_hex

    ok = verify_cli(genuine, "--node-key", key, "--topic", topic)
    assert (ok.returncode, ok.stdout.count("\n")) == (0, 1), ok
    assert ok.stdout.startswith("verified: swap cli offered at seq 1")

    (tmp_path / "message.json").write_bytes(genuine)
    (tmp_path / "node.pub").write_text(key + "\n")
    from_files = verify_cli(
        b"", "--node-key-file", str(tmp_path / "node.pub"), str(tmp_path / "message.json")
    )
    assert from_files.returncode == 0, from_files

    forged = genuine.replace(b'"status":"offered"', b'"status":"completed"')
    refused = verify_cli(forged, "--node-key", key)
    assert (refused.returncode, refused.stdout.count("\n")) == (1, 1), refused
    assert refused.stdout.startswith("NOT VERIFIED: the signature does not verify")

    elsewhere = verify_cli(genuine, "--node-key", key, "--topic", notify.swap_topic(node, "other"))
    assert elsewhere.returncode == 1 and "signed for" in elsewhere.stdout

    bad_key = verify_cli(genuine, "--node-key", "04" + "00" * 32)
    assert bad_key.returncode == 2 and "66 hex" in bad_key.stderr


def messages_on(messages: list[Received], topic: str) -> list[bytes]:
    return [m.payload for m in messages if m.topic == topic]


async def test_ended_swaps_retained_status_is_cleared_after_the_setting(
    store: Store, tmp_path: Path, own_broker: Mosquitto
) -> None:
    node = unique_node_id()
    settings = Settings(
        node_id=node,
        store=StoreSettings(url=f"sqlite:///{tmp_path / 'notify.sqlite3'}"),
        mqtt=MqttSettings(host="127.0.0.1", port=own_broker.port, retain_ended_for=timedelta(seconds=1)),
    )
    ended, running = notify.swap_topic(node, "ended"), notify.swap_topic(node, "running")
    await create_swap(store, "ended")
    for step in range(len(HAPPY_PATH)):
        await advance(store, "ended", step)
    await create_swap(store, "running")
    await advance(store, "running", 0)
    async with (
        subscribed(own_broker.port, f"settlerd/v1/{node}/swaps/+") as sub,
        publishing(store, settings),
    ):
        await sub.wait_until(lambda ms: messages_on(ms, ended)[-1:] == [b""], "the ended swap cleared")
        # The sweep that cleared it looked at the running swap's events too, and left it alone.
        assert messages_on(sub.messages, running) and all(messages_on(sub.messages, running))

        # A swap that ends later is cleared too, once its end is old enough, after its final status went out.
        await advance(store, "running", 1)
        for step in range(2, len(HAPPY_PATH)):
            await advance(store, "running", step)
        await sub.wait_until(lambda ms: messages_on(ms, running)[-1:] == [b""], "the later one cleared")
        assert json.loads(messages_on(sub.messages, running)[-2])["status"] == "completed"

    async with subscribed(own_broker.port, f"settlerd/v1/{node}/#") as late:
        await late.wait_until(lambda ms: bool(messages_on(ms, notify.online_topic(node))), "online")
    assert messages_on(late.messages, ended) == [] and messages_on(late.messages, running) == []
