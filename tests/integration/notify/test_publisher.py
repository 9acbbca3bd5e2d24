"""The MQTT publisher against the real Mosquitto: order, retained status, last will, resume, outage."""

from __future__ import annotations

import asyncio
from pathlib import Path

from settlerd import notify
from settlerd.api import Metrics
from settlerd.status.document import event_document, status_document
from settlerd.store import Store
from tests.integration.api.swaps import HAPPY_PATH, SECRET, advance, create_swap

from .conftest import (
    SHARED_BROKER,
    Mosquitto,
    Received,
    clear_retained,
    publishing,
    settings_for,
    subscribed,
    unique_node_id,
    wait_for_cursor,
)

PORT = SHARED_BROKER[1]


def seqs(messages: list[Received]) -> list[int]:
    return [m.json()["seq"] for m in messages]


async def test_every_transition_in_order_with_retained_status_and_online_flag(
    store: Store, tmp_path: Path
) -> None:
    node = unique_node_id()
    settings = settings_for(node, tmp_path / "notify.sqlite3")
    events_topic, swap_topic = notify.events_topic(node), notify.swap_topic(node, "mq-1")
    try:
        async with subscribed(PORT, f"settlerd/v1/{node}/#") as sub:
            async with publishing(store, settings) as wakeup:
                await sub.wait_until(lambda ms: any(m.payload == b"true" for m in ms), "online=true")
                written = [await create_swap(store, "mq-1")]
                for step in range(len(HAPPY_PATH) + 1):
                    wakeup.set()
                    await sub.wait_until(
                        lambda ms: written[-1].seq in seqs(sub.on(events_topic)), "the event"
                    )
                    if step < len(HAPPY_PATH):
                        written.append(await advance(store, "mq-1", step))
                online = sub.on(notify.online_topic(node))
                assert [m.payload for m in online] == [b"true"]
                # A subscriber can hold a message before its PUBACK reaches the publisher: a stop in that
                # moment leaves the cursor one short, and the message is sent again after a restart.
                await wait_for_cursor(store, written[-1].seq)
            await sub.wait_until(lambda ms: ms[-1].payload == b"false", "online=false on a clean stop")

        events = sub.on(events_topic)
        assert seqs(events) == [e.seq for e in written]
        # No node key here: every message names its topic, none is signed.
        assert [m.json() for m in events] == [{**event_document(e), "topic": events_topic} for e in written]
        assert not any(m.retain for m in events)

        statuses = sub.on(swap_topic)
        assert [m.json()["status"] for m in statuses] == [e.status for e in written]
        assert seqs(statuses) == [e.seq for e in written]
        final = statuses[-1].json()
        swap = await store.get_swap("mq-1")
        assert swap is not None
        expected = {**status_document(swap, await store.legs_of("mq-1")), "seq": written[-1].seq}
        assert final == {**expected, "topic": swap_topic}
        assert all(SECRET.hex() not in m.payload.decode() for m in sub.messages)
        assert await notify.acked_seq(store) == written[-1].seq
    finally:
        await clear_retained(PORT, node, ["mq-1"])


async def test_late_subscriber_gets_every_swap_current_status(store: Store, tmp_path: Path) -> None:
    node = unique_node_id()
    settings = settings_for(node, tmp_path / "notify.sqlite3")
    swaps = {f"late-{i}": i * 2 for i in range(5)}  # swap id: steps taken
    try:
        async with publishing(store, settings) as wakeup:
            for swap_id, steps in swaps.items():
                await create_swap(store, swap_id)
                for step in range(steps):
                    await advance(store, swap_id, step)
            wakeup.set()
            await wait_for_cursor(store, (await store.chain_head()).seq)

            async with subscribed(PORT, f"settlerd/v1/{node}/swaps/+") as late:
                await late.wait_until(lambda ms: len(ms) == len(swaps), "a retained status per swap")
        for message in late.messages:
            assert message.retain
            swap_id = message.topic.rsplit("/", 1)[1]
            swap = await store.get_swap(swap_id)
            assert swap is not None
            last = (await store.events(swap_id=swap_id))[-1]
            expected = {
                **status_document(swap, await store.legs_of(swap_id)),
                "seq": last.seq,
                "topic": message.topic,
            }
            assert message.json() == expected
        assert sorted(m.json()["status"] for m in late.messages) == sorted(
            ["offered", "leg1_locking", "leg1_final", "leg2_final", "leg2_claimed"]
        )
    finally:
        await clear_retained(PORT, node, list(swaps))


async def test_restart_resumes_after_the_acknowledged_event(store: Store, tmp_path: Path) -> None:
    node = unique_node_id()
    settings = settings_for(node, tmp_path / "notify.sqlite3")
    metrics = Metrics()
    try:
        async with subscribed(PORT, notify.events_topic(node)) as sub:
            await create_swap(store, "resume")
            await advance(store, "resume", 0)
            async with publishing(store, settings):
                await sub.wait_until(lambda ms: len(ms) == 2, "the first two events")
            for step in range(1, 4):
                await advance(store, "resume", step)  # written while the publisher is down
            backlog = await metrics.render(store, mqtt_enabled=True)
            assert b"settlerd_mqtt_backlog_events 3.0" in backlog
            async with publishing(store, settings):
                await sub.wait_until(lambda ms: len(ms) >= 5, "the events written while down")
                await wait_for_cursor(store, 5)
        assert seqs(sub.messages) == [1, 2, 3, 4, 5]  # nothing repeated, nothing skipped
        assert b"settlerd_mqtt_backlog_events 0.0" in await metrics.render(store, mqtt_enabled=True)
    finally:
        await clear_retained(PORT, node, ["resume"])


async def test_broker_outage_mid_stream_loses_and_reorders_nothing(
    store: Store, tmp_path: Path, own_broker: Mosquitto
) -> None:
    node = unique_node_id()
    settings = settings_for(node, tmp_path / "notify.sqlite3", port=own_broker.port)
    swaps = 40

    async def trade(wakeup: asyncio.Event) -> None:
        for i in range(swaps):
            await create_swap(store, f"out-{i}")
            for step in range(3):
                await advance(store, f"out-{i}", step)
            wakeup.set()
            await asyncio.sleep(0.01)

    async with (
        subscribed(own_broker.port, notify.events_topic(node), persistent=True) as sub,
        publishing(store, settings) as wakeup,
    ):
        writer = asyncio.create_task(trade(wakeup), name="writer")
        await sub.wait_until(lambda ms: len(ms) >= 30, "events before the outage")
        own_broker.stop()
        assert not writer.done()  # the outage comes mid-stream: events are still being written
        seen_before = len(sub.messages)
        await asyncio.sleep(1.0)  # the writer goes on appending while the broker is down
        own_broker.start()
        await writer
        head = (await store.chain_head()).seq
        assert head == swaps * 4
        await sub.wait_until(lambda ms: bool(ms) and ms[-1].json()["seq"] == head, "the last event")

    received = seqs(sub.messages)
    assert seen_before < head
    deduplicated = []
    for seq in received:
        if deduplicated and seq <= deduplicated[-1]:
            assert seq in deduplicated  # a repeat of a delivered event, which seq lets consumers drop
            continue
        deduplicated.append(seq)
    assert deduplicated == list(range(1, head + 1))
    print(f"outage: {head} events, {len(received) - head} repeated after the broker restart")
