"""Event streams flooded past their cap on a real local network: the daemon refuses the excess, and the
swap the streams watch settles on both chains, each open stream following it to its end."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from localnet import ADMIN_TOKEN, Daemon, Localnet, btc, eth

from tests.integration.api.test_event_stream import sse_events

PER_TOKEN = 16  # api.max_streams_per_token's default, which the local network's daemons keep
EXTRA = 24  # streams past the cap
SETTLE_S = 180.0  # a swap settles in well under a minute here; room for a loaded machine


async def test_a_stream_flood_stops_neither_trading_nor_claims(
    net: Localnet, desks: tuple[Daemon, Daemon]
) -> None:
    a, b = desks
    swap_id = await net.trade(a, b, give=btc(1_000_000), get=eth(10**16))
    url = f"{a.url}/v1/swaps/{swap_id}/events"
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Accept": "text/event-stream"}
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
        contextlib.AsyncExitStack() as held,
    ):
        responses = [
            await held.enter_async_context(http.get(url, headers=headers)) for _ in range(PER_TOKEN + EXTRA)
        ]
        opened = [r for r in responses if r.status == 200]
        refused = [r.status for r in responses if r.status != 200]
        assert len(opened) == PER_TOKEN and refused == [429] * EXTRA

        # Trading goes on: a second swap is captured while the streams are held.
        second = await net.trade(b, a, give=eth(10**16), get=btc(1_000_000))
        await net.wait_status(a, swap_id, "completed", timeout=SETTLE_S)
        await net.wait_status(b, swap_id, "completed", timeout=SETTLE_S)
        await net.wait_status(a, second, "completed", timeout=SETTLE_S)

        async def last_status(response: aiohttp.ClientResponse) -> str:
            # The stream ends by itself once the swap is terminal.
            statuses = [event["status"] async for _, event in sse_events(response) if event["status"]]
            return str(statuses[-1])

        ends = await asyncio.wait_for(asyncio.gather(*map(last_status, opened)), SETTLE_S)
        assert ends == ["completed"] * PER_TOKEN
