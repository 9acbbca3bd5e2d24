"""Account nonces that survive restarts and never leave a gap.

The next nonce is persisted as a cursor before it is handed out (S4), and on start it is recomputed from
the chain and from the journal of signed transactions: a nonce that was handed out but whose transaction
never reached the journal was never broadcast either (the engine journals before it broadcasts), so it is
handed out again instead of leaving a gap that would block every later transaction.
"""

from __future__ import annotations

import asyncio
import logging

from settlerd.adapters import AdapterStore

log = logging.getLogger(__name__)


class NonceManager:
    def __init__(self, chain: str, address: str, store: AdapterStore) -> None:
        self._chain = chain
        self._address = address
        self._store = store
        self._key = f"nonce:{address.lower()}"
        self._next: int | None = None
        self._lock = asyncio.Lock()

    async def sync(self, chain_pending_nonce: int) -> int:
        """Recompute the next nonce from the node's pending count and the journal; returns it."""
        async with self._lock:
            journaled = [
                tx.nonce
                for tx in await self._store.unconfirmed_txs(self._chain)
                if tx.nonce is not None and str(tx.meta.get("from", "")).lower() == self._address.lower()
            ]
            nxt = max([chain_pending_nonce, *(n + 1 for n in journaled)])
            stored = await self._store.get_cursor(self._chain, self._key)
            if stored is not None and int(stored) > nxt:
                log.warning(
                    "%s: nonces %d..%d were handed out but never journaled; reusing them",
                    self._chain, nxt, int(stored) - 1,
                )  # fmt: skip
            await self._store.put_cursor(self._chain, self._key, str(nxt))
            self._next = nxt
            return nxt

    async def allocate(self) -> int:
        async with self._lock:
            if self._next is None:
                raise RuntimeError("NonceManager.sync() must run before allocate(); start the adapter first")
            nonce = self._next
            await self._store.put_cursor(self._chain, self._key, str(nonce + 1))
            self._next = nonce + 1
            return nonce
