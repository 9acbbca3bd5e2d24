"""Publish the event log to MQTT strictly in sequence order, resuming from the last acknowledged event.

For each event, in ``seq`` order: when it belongs to a swap, that swap's status document goes to its
retained topic (QoS 1); then the event itself goes to the events topic (QoS 1). One message is in flight
at a time and the cursor advances only after the broker's PUBACK, so a broker outage or a crash can
repeat the last event (consumers drop ``seq`` they have seen) but never loses or reorders one (S6).
The cursor is persisted after each batch and on every disconnect; a crash between two persists repeats
at most one batch.

Every JSON message names its topic and, with a node key, is signed (``settlerd.status.signature``). When idle,
the publisher clears the retained status of swaps that ended ``mqtt.retain_ended_for`` ago (``retention``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import aiomqtt

from settlerd.config import Settings
from settlerd.config.credentials import CredentialError
from settlerd.engine.documents import NodeKey
from settlerd.status.document import event_document, status_document
from settlerd.status.signature import seal
from settlerd.store import Store

from .client import make_client
from .cursor import acked_seq, save_acked_seq
from .retention import RetainedCleaner
from .topics import events_topic, online_topic, swap_topic

log = logging.getLogger("settlerd.notify")

BATCH = 200  # events read per query; also the most a crash can make us publish twice
# Without a wakeup from the writer, new events still go out within this long.
POLL_INTERVAL_S = 1.0
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0  # a broker back after an outage is found within half a minute
GOODBYE_TIMEOUT_S = 2.0  # a clean stop says offline, but never holds up shutdown for long


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


class _Cursor:
    """The last event the broker acknowledged, and what of it is already in the store."""

    def __init__(self, store: Store, acked: int) -> None:
        self._store = store
        self.acked = acked
        self._saved = acked

    async def save(self) -> None:
        if self.acked != self._saved:
            await save_acked_seq(self._store, self.acked)
            self._saved = self.acked


class _Output:
    """What a batch needs besides the store: whose topics, the key signing them, the cursor."""

    def __init__(self, node_id: str, key: NodeKey | None, cursor: _Cursor, cleaner: RetainedCleaner) -> None:
        self.node_id = node_id
        self.key = key
        self.cursor = cursor
        self.cleaner = cleaner

    def message(self, topic: str, document: dict[str, Any]) -> bytes:
        return _json(seal(topic, document, self.key))


async def run(store: Store, settings: Settings, wakeup: asyncio.Event, *, key: NodeKey | None) -> None:
    """Publish forever, signing with ``key`` (unsigned when None). Whoever appends events sets ``wakeup``
    to get them out without waiting for a poll; the publisher clears it, so it must be an event of its
    own, not one other waiters share."""
    node_id = settings.node_id
    cursor = _Cursor(store, await acked_seq(store))
    out = _Output(node_id, key, cursor, RetainedCleaner(store, node_id, settings.mqtt.retain_ended_for))
    backoff = BACKOFF_INITIAL_S
    where = f"{settings.mqtt.host}:{settings.mqtt.port}"
    log.info(
        "mqtt: publishing to %s from event %d, %s",
        where,
        cursor.acked + 1,
        f"signed with node key {key.public_hex}" if key else "unsigned (set engine.node_key_file to sign)",
    )
    while True:
        try:
            client = make_client(settings.mqtt, node_id)
            async with client:
                await client.publish(online_topic(node_id), b"true", qos=1, retain=True)
                log.info("mqtt: connected to %s, resuming after event %d", where, cursor.acked)
                backoff = BACKOFF_INITIAL_S
                try:
                    await _publish_forever(client, store, out, wakeup)
                except asyncio.CancelledError:
                    await _say_offline(client, node_id)
                    raise
        except aiomqtt.MqttError as exc:
            log.warning(
                "mqtt: broker %s unreachable or connection lost (%s); events wait in the log, "
                "retrying in %.1f s",
                where,
                exc,
                backoff,
            )
        except CredentialError as exc:
            log.error("mqtt: %s; retrying in %.1f s", exc, backoff)
        finally:
            await asyncio.shield(cursor.save())
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, BACKOFF_MAX_S)


async def _publish_forever(client: aiomqtt.Client, store: Store, out: _Output, wakeup: asyncio.Event) -> None:
    node_id, cursor = out.node_id, out.cursor
    while True:
        wakeup.clear()  # before reading: an append after this read sets it again
        events = await store.events(after_seq=cursor.acked, limit=BATCH)
        if not events:
            if out.cleaner.due(time.monotonic()):
                await out.cleaner.sweep(client, cursor.acked, time.monotonic())
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), POLL_INTERVAL_S)
            continue
        # Rows are read once per swap per batch: every event of the batch sees them at least as new.
        documents: dict[str, dict[str, Any] | None] = {}
        for event in events:
            if event.swap_id is not None:
                if event.swap_id not in documents:
                    documents[event.swap_id] = await _status_of(store, event.swap_id, event.seq)
                document = documents[event.swap_id]
                if document is not None:
                    topic = swap_topic(node_id, event.swap_id)
                    payload = out.message(topic, {**document, "seq": event.seq})
                    await client.publish(topic, payload, qos=1, retain=True)
            topic = events_topic(node_id)
            await client.publish(topic, out.message(topic, event_document(event)), qos=1)
            cursor.acked = event.seq
        await cursor.save()


async def _status_of(store: Store, swap_id: str, seq: int) -> dict[str, Any] | None:
    swap = await store.get_swap(swap_id)
    if swap is None:
        log.warning("mqtt: event %d names swap %s, which is not in the store", seq, swap_id)
        return None
    return status_document(swap, await store.legs_of(swap.id))


async def _say_offline(client: aiomqtt.Client, node_id: str) -> None:
    """A clean stop does not trigger the last will, so say it ourselves."""
    try:
        await client.publish(online_topic(node_id), b"false", qos=1, retain=True, timeout=GOODBYE_TIMEOUT_S)
    except aiomqtt.MqttError:
        log.warning("mqtt: could not publish offline on stop; the broker's last will will say it")
