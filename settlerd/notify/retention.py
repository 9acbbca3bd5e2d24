"""Clear the retained status of swaps that ended long ago, so a broker does not keep every swap forever.

Every retained status document was published for an event. Once that event is ``mqtt.retain_ended_for``
old, acknowledged by the broker, and its swap has ended at least as long ago, the swap's topic gets an
empty retained message, which deletes the retained one (MQTT 3.1.1, 3.3.1.3). The sweep walks the event
log once, in ``seq`` order, behind a cursor of its own: a status published again later (an event on an
ended swap) is behind a later event, and cleared when that one is old enough.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import aiomqtt

from settlerd.store import Store
from settlerd.swap import TERMINAL

from .cursor import cleared_seq, save_cleared_seq
from .topics import swap_topic

log = logging.getLogger("settlerd.notify")

SWEEP_BATCH = 200  # events examined per sweep; a backlog is worked off one batch per idle moment
# Nothing falls due faster than the retention itself, and hourly is soon enough for days of retention.
SWEEP_INTERVAL_S = 3600.0

_TERMINAL = frozenset(str(status) for status in TERMINAL)


class RetainedCleaner:
    """Sweeps from where the last sweep stopped; ``due`` says when the next one is worth a query."""

    def __init__(self, store: Store, node_id: str, retain_for: timedelta) -> None:
        self._store = store
        self._node_id = node_id
        self._retain_for = retain_for
        self._interval = min(SWEEP_INTERVAL_S, retain_for.total_seconds())
        self._next_at = 0.0  # monotonic time of the next sweep; the first comes at once
        self._cleared: int | None = None

    def due(self, now: float) -> bool:
        return now >= self._next_at

    async def sweep(self, client: aiomqtt.Client, acked: int, now: float) -> int:
        """Clear what fell due among the events up to ``acked``; the number of topics cleared."""
        if self._cleared is None:
            self._cleared = await cleared_seq(self._store)
        cutoff = datetime.now(UTC) - self._retain_for
        events = await self._store.events(after_seq=self._cleared, limit=SWEEP_BATCH)
        ended: dict[str, bool] = {}
        cleared, last = 0, self._cleared
        for event in events:
            if event.seq > acked or event.created_at > cutoff:
                break
            last = event.seq
            if event.swap_id is None or event.swap_id in ended:
                continue
            swap = await self._store.get_swap(event.swap_id)
            # A swap still running, or ended less than the retention ago, keeps its status.
            ended[event.swap_id] = swap is not None and swap.status in _TERMINAL and swap.updated_at <= cutoff
            if ended[event.swap_id]:
                await client.publish(swap_topic(self._node_id, event.swap_id), b"", qos=1, retain=True)
                cleared += 1
        if last != self._cleared:
            await save_cleared_seq(self._store, last)
            self._cleared = last
        # A full batch that all fell due leaves more behind it: go on at the next idle moment.
        caught_up = len(events) < SWEEP_BATCH or last != events[-1].seq
        self._next_at = now + self._interval if caught_up else now
        if cleared:
            log.info("mqtt: cleared the retained status of %d swaps ended %s ago", cleared, self._retain_for)
        return cleared
