"""The publisher's positions in the event log, kept in the store so a restart resumes there: the last event
the broker acknowledged, and the last event the sweep of ended swaps' retained status looked at."""

from __future__ import annotations

from settlerd.store import Store

CURSOR = ("mqtt", "acked_seq")
CLEARED = ("mqtt", "retained_cleared_seq")


async def acked_seq(store: Store) -> int:
    value = await store.get_cursor(*CURSOR)
    return int(value) if value is not None else 0


async def save_acked_seq(store: Store, seq: int) -> None:
    await store.put_cursor(*CURSOR, str(seq))


async def cleared_seq(store: Store) -> int:
    value = await store.get_cursor(*CLEARED)
    return int(value) if value is not None else 0


async def save_cleared_seq(store: Store, seq: int) -> None:
    await store.put_cursor(*CLEARED, str(seq))
