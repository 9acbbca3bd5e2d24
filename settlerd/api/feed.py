"""One reader of the event log for every event stream: woken by the engine, fanned out in memory.

The event log is the source of truth (S6). The feed reads what was appended once, whoever listens, and
hands each event to the streams of its swap; a stream reads the store only to catch up when it opens
or after it fell behind. The engine sets ``wakeup`` after every logged change, so a stream hears of it
at once; another writer (a replica, the CLI) is heard within one poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator

from aiohttp import web

from settlerd.store import Event, Store, StoreError

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5  # the most an SSE client waits for an event nobody announced
FEED_BATCH = 500  # events read per query when the log grew a lot at once
# Events kept for one stream that has not written them yet; past this it catches up from the store,
# so a stalled client costs a bounded amount of memory.
SUBSCRIBER_BUFFER = 1000


class Subscription:
    """The events of one swap that the feed read since the stream last took them."""

    def __init__(self, swap_id: str) -> None:
        self.swap_id = swap_id
        self.changed = asyncio.Event()  # set when there is something to take, or the feed closes
        self.lagged = False  # events were dropped: the stream must read the store again
        self._events: list[Event] = []

    def take(self) -> list[Event]:
        events, self._events = self._events, []
        self.changed.clear()
        return events

    def _deliver(self, event: Event) -> None:
        if len(self._events) >= SUBSCRIBER_BUFFER:
            self._events.clear()
            self.lagged = True
        else:
            self._events.append(event)
        self.changed.set()


class LogFeed:
    def __init__(self, store: Store, wakeup: asyncio.Event | None = None) -> None:
        self._store = store
        self._wakeup = wakeup or asyncio.Event()
        self._head: int | None = None  # the last event handed out; None until the log is first read
        self._subscribers: dict[str, set[Subscription]] = {}
        self.closing = False  # the server is shutting down: streams end instead of waiting

    def close(self) -> None:
        self.closing = True
        self._wakeup.set()
        for subscriptions in self._subscribers.values():
            for subscription in subscriptions:
                subscription.changed.set()

    @contextlib.contextmanager
    def subscribe(self, swap_id: str) -> Iterator[Subscription]:
        """Every event of ``swap_id`` appended from now on, until the block ends.

        Subscribe before reading the backlog from the store: an event is then either in that read or
        handed to the subscription (or both; the stream skips what it already sent)."""
        subscription = Subscription(swap_id)
        self._subscribers.setdefault(swap_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscriptions = self._subscribers[swap_id]
            subscriptions.discard(subscription)
            if not subscriptions:
                del self._subscribers[swap_id]

    async def _read(self) -> None:
        if self._head is None or not self._subscribers:
            # Nobody listens: only where the log ends matters, for the first stream that comes.
            self._head = (await self._store.chain_head()).seq
            return
        while True:
            events = await self._store.events(after_seq=self._head, limit=FEED_BATCH)
            for event in events:
                for subscription in self._subscribers.get(event.swap_id or "", ()):
                    subscription._deliver(event)
                self._head = event.seq
            if len(events) < FEED_BATCH:
                return

    async def run(self) -> None:
        # Ends by ``close()``, never by cancellation: a read cancelled mid-query can leave its SQLite
        # connection open, and an open reader keeps the store's closing WAL checkpoint waiting.
        failing = False
        while not self.closing:
            self._wakeup.clear()
            try:
                await self._read()
            except StoreError as exc:
                # A database that went away (a standby rides it out; a leader stops on its own): streams
                # wait, and the feed polls again instead of ending for good.
                if not failing:
                    log.warning("event streams paused: %s", exc)
                failing = True
            else:
                failing = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), POLL_INTERVAL_S)


def feed_context(feed: LogFeed) -> Callable[[web.Application], AsyncIterator[None]]:
    """The feed's task lives exactly as long as the app: started on start-up, cancelled on cleanup."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(feed.run(), name="api-log-feed")
        yield
        feed.close()
        await task

    return context
