"""A real daemon killed with SIGKILL: the broker publishes its last will, and the restarted daemon
publishes everything written meanwhile, in order, from the cursor it persisted."""

from __future__ import annotations

import signal
from pathlib import Path

from settlerd import notify
from settlerd.store import Store
from tests.integration.api.daemon import running_daemon
from tests.integration.api.swaps import HAPPY_PATH, advance, create_swap

from .conftest import SHARED_BROKER, clear_retained, subscribed, unique_node_id


async def test_crash_fires_the_last_will_and_a_restart_publishes_the_rest(tmp_path: Path) -> None:
    node = unique_node_id()
    online = notify.online_topic(node)
    events = notify.events_topic(node)
    try:
        async with (
            subscribed(SHARED_BROKER[1], f"settlerd/v1/{node}/#") as sub,
            running_daemon(tmp_path, node, mqtt=True) as daemon,
        ):
            store = await Store.open(f"sqlite:///{daemon.db}")
            try:
                await create_swap(store, "crash")
                for step in range(3):
                    await advance(store, "crash", step)
                await sub.wait_until(lambda ms: len(ms) > 0 and len(sub.on(events)) == 4, "the first events")
                assert [m.payload for m in sub.on(online)] == [b"true"]

                assert await daemon.stop(signal.SIGKILL) == -signal.SIGKILL
                await sub.wait_until(lambda ms: sub.on(online)[-1].payload == b"false", "the last will")
                async with subscribed(SHARED_BROKER[1], online) as late:
                    await late.wait_until(lambda ms: len(ms) == 1, "the retained online flag")
                assert (late.messages[0].payload, late.messages[0].retain) == (b"false", True)

                for step in range(3, len(HAPPY_PATH)):
                    await advance(store, "crash", step)  # written while the daemon is dead
                head = (await store.chain_head()).seq
                await daemon.start()
                await sub.wait_until(lambda ms: head in [m.json()["seq"] for m in sub.on(events)], "the rest")
                assert sub.on(online)[-1].payload == b"true"
            finally:
                await store.close()
            assert await daemon.stop() == 0

        received = [m.json()["seq"] for m in sub.on(events)]
        first_copies = sorted(set(received), key=received.index)
        assert first_copies == list(range(1, head + 1))  # none lost, first deliveries in order
        for position, seq in enumerate(received):
            # A repeat only of what was sent before the crash and not yet persisted as acknowledged.
            assert seq not in received[:position] or seq <= 4
        statuses = sub.on(notify.swap_topic(node, "crash"))
        assert statuses[-1].json()["status"] == "completed"
        assert statuses[-1].json()["seq"] == head
    finally:
        await clear_retained(SHARED_BROKER[1], node, ["crash"])
