"""The last event sequence number the broker acknowledged, kept in the store so a restart resumes there."""

from __future__ import annotations

from settlerd.store import Store

CURSOR = ("mqtt", "acked_seq")


async def acked_seq(store: Store) -> int:
    value = await store.get_cursor(*CURSOR)
    return int(value) if value is not None else 0


async def save_acked_seq(store: Store, seq: int) -> None:
    await store.put_cursor(*CURSOR, str(seq))
