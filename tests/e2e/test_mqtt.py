"""A venue subscribed to MQTT sees every transition of a real swap, in order, matching the API timeline,
and signed by the daemon's node key."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiomqtt
from localnet import Daemon, Localnet, btc, eth

from settlerd.status.signature import verify_message

BTC_AMOUNT = 5_000_000
ETH_AMOUNT = 10**17


async def collect(node: Daemon, into: list[dict[str, Any]], subscribed: asyncio.Event) -> None:
    """Every event, once its signature verifies against the node's key for the topic it arrived on."""
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.subscribe(f"settlerd/v1/{node.node_id}/events", qos=1)
        subscribed.set()
        async for message in client.messages:
            into.append(verify_message(bytes(message.payload), node.node_pubkey, str(message.topic)))


async def test_a_subscriber_sees_every_event_of_a_swap_in_order(
    net: Localnet, desks: tuple[Daemon, Daemon]
) -> None:
    a, b = desks
    seen: list[dict[str, Any]] = []
    subscribed = asyncio.Event()
    listener = asyncio.create_task(collect(a, seen, subscribed), name="venue")
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        swap_id = await net.trade(a, b, give=btc(BTC_AMOUNT), get=eth(ETH_AMOUNT))
        await net.wait_status(a, swap_id, "completed")
        timeline = await net.timeline(a, swap_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while [e["seq"] for e in seen if e["swap_id"] == swap_id] != [e["seq"] for e in timeline]:
            assert loop.time() < deadline, (seen, timeline)
            await asyncio.sleep(0.2)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener

    ours = [e for e in seen if e["swap_id"] == swap_id]
    assert [(e["seq"], e["kind"], e["status"]) for e in ours] == [
        (e["seq"], e["kind"], e["status"]) for e in timeline
    ]
    assert ours[-1]["status"] == "completed"
