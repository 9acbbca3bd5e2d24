"""Tells event streams that the log grew: one poll of the chain head for all of them, not one per stream.

The event log is the source of truth (S6); this only says when to read it again. ``poke()`` lets the
writer announce an append at once; without it new events are seen within one poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from settlerd.store import Store, StoreError

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5  # the most an SSE client waits for an event nobody announced


class LogFeed:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._head = -1
        self._changed = asyncio.Event()
        self.closing = False  # the server is shutting down: streams end instead of waiting

    def close(self) -> None:
        self.closing = True
        self.poke()

    def changed(self) -> asyncio.Event:
        """Take this before reading the log; it is set at the next change after that."""
        return self._changed

    def poke(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def run(self) -> None:
        # Ends by ``close()``, never by cancellation: a read cancelled mid-query can leave its SQLite
        # connection open, and an open reader keeps the store's closing WAL checkpoint waiting.
        failing = False
        while not self.closing:
            try:
                head = (await self._store.chain_head()).seq
            except StoreError as exc:
                # A database that went away (a standby rides it out; a leader stops on its own): streams
                # wait, and the feed polls again instead of ending for good.
                if not failing:
                    log.warning("event streams paused: %s", exc)
                failing = True
                head = self._head
            else:
                failing = False
            if head != self._head:
                self._head = head
                self.poke()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), POLL_INTERVAL_S)


def feed_context(feed: LogFeed) -> Callable[[web.Application], AsyncIterator[None]]:
    """The feed's task lives exactly as long as the app: started on start-up, cancelled on cleanup."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(feed.run(), name="api-log-feed")
        yield
        feed.close()
        await task

    return context
