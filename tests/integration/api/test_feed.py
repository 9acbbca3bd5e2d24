"""The log feed: one read of the log per change whoever listens, woken by the engine, bounded per stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from settlerd.api import feed as feed_module
from settlerd.api.feed import LogFeed
from settlerd.store import Event, Store

from .swaps import advance, create_swap

WAIT_S = 20.0  # an upper bound for a stalled feed, not a timing assertion


class CountingStore:
    """The store, counting the log reads the feed makes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads = 0

    async def chain_head(self) -> object:
        return await self.store.chain_head()

    async def events(self, **kwargs: object) -> list[Event]:
        self.reads += 1
        return await self.store.events(**kwargs)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(feed: LogFeed) -> AsyncIterator[None]:
    task = asyncio.create_task(feed.run(), name="test-feed")
    try:
        yield
    finally:
        feed.close()
        await asyncio.wait_for(task, WAIT_S)


async def first_pass(feed: LogFeed) -> None:
    """Until the feed has read where the log ends: what is appended next is news to it."""
    for _ in range(int(WAIT_S / 0.01)):
        if feed._head is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the feed never read the log")


async def test_a_wakeup_delivers_each_event_to_every_stream_of_its_swap_in_one_read(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No poll for the length of the test: only the engine's wakeup can make the feed read.
    monkeypatch.setattr(feed_module, "POLL_INTERVAL_S", 3600.0)
    await create_swap(store, "watched")
    await create_swap(store, "other")
    counting = CountingStore(store)
    wakeup = asyncio.Event()
    feed = LogFeed(counting, wakeup)  # type: ignore[arg-type]
    async with running(feed):
        with contextlib.ExitStack() as stack:
            streams = [stack.enter_context(feed.subscribe("watched")) for _ in range(50)]
            others = stack.enter_context(feed.subscribe("other"))
            await first_pass(feed)
            appended = await advance(store, "watched", 0)
            await advance(store, "other", 0)
            reads = counting.reads
            wakeup.set()
            for stream in streams:
                await asyncio.wait_for(stream.changed.wait(), WAIT_S)
                assert [e.seq for e in stream.take()] == [appended.seq]
            await asyncio.wait_for(others.changed.wait(), WAIT_S)
            assert [e.swap_id for e in others.take()] == ["other"]
            assert counting.reads - reads <= 2  # one read for 51 streams (and one more if woken twice)
    assert not feed._subscribers  # every subscription left with its stream


async def test_a_stream_that_does_not_keep_up_is_told_to_read_the_store_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_module, "SUBSCRIBER_BUFFER", 3)
    await create_swap(store, "busy")
    wakeup = asyncio.Event()
    feed = LogFeed(store, wakeup)
    async with running(feed):
        with feed.subscribe("busy") as stream:
            await first_pass(feed)
            for step in range(5):
                await advance(store, "busy", step)
            wakeup.set()
            await asyncio.wait_for(stream.changed.wait(), WAIT_S)
            assert stream.lagged  # its buffer stays bounded; the stream re-reads from its last event
            assert len(stream.take()) < 3
