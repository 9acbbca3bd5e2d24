"""Two desks on one regtest node: each a BitcoinAdapter with its own seed and its own SQLite store."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

from settlerd_bitcoin import BitcoinAdapter, factory
from settlerd_bitcoin.htlc import sha256

from settlerd.adapters import ChainEvent, HtlcEvent, HtlcTerms, SignedTx
from settlerd.chains.supervisor import ChainLoop
from settlerd.store import Store, TxStatus
from tests.fixtures.timeouts import TIMEOUT_FACTOR

WAIT_S = 30 * TIMEOUT_FACTOR  # an event the scanner should report within a few polls
POLL_S = 0.05  # the adapter's poll interval in tests: a regtest block appears the moment it is mined


E = TypeVar("E", bound=HtlcEvent)


@dataclass
class Desk:
    name: str
    node: Any
    db: Path
    seed: bytes
    birthday: int
    store: Store | None = None
    adapter: BitcoinAdapter | None = None
    loop: asyncio.Task[None] | None = field(default=None, repr=False)
    _events: AsyncIterator[ChainEvent] | None = field(default=None, repr=False)
    _backlog: list[ChainEvent] = field(default_factory=list, repr=False)

    @property
    def a(self) -> BitcoinAdapter:
        assert self.adapter is not None
        return self.adapter

    async def start(self, watch: Sequence[HtlcTerms] = ()) -> None:
        """Start the adapter; ``watch`` is watched before it starts, as the daemon does after a restart."""
        self.store = await Store.open(f"sqlite:///{self.db}")
        settings = self.settings()
        self.adapter = factory(settings, self.store)
        for terms in watch:
            self.adapter.watch(terms)
        await self.adapter.start()
        self.loop = asyncio.create_task(ChainLoop("bitcoin", self.adapter).run(), name=f"{self.name}-loop")
        self._events = aiter(self.adapter.events())

    def settings(self) -> dict[str, Any]:
        """The adapter settings this desk runs with."""
        return {
            "rpc_url": self.node.rpc_url,
            "rpc_user": self.node.rpc_user,
            "rpc_password": self.node.rpc_password,
            "network": "regtest",
            "seed": self.seed.hex(),
            "birthday_height": self.birthday,
            "finality_depth": 3,
            "poll_interval": POLL_S,
            "fee_floor": 2.0,
            "fee_cap": 50.0,
        }

    async def stop(self) -> None:
        """Stop as the daemon does on a signal: the chain loop cancelled, then the adapter closed."""
        if self.loop is not None:
            self.loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.loop
        if self.adapter is not None:
            await self.adapter.close()
        if self.store is not None:
            await self.store.close()
        self.adapter = self.store = self._events = self.loop = None
        self._backlog.clear()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def expect(self, kind: type[E], hashlock: bytes, where: Callable[[E], bool] = lambda e: True) -> E:
        """The first event of ``kind`` for ``hashlock`` satisfying ``where``, in the order they came.

        Events that do not match stay in a backlog for later calls (another swap's events, say).
        """
        assert self._events is not None

        def matches(event: ChainEvent) -> TypeGuard[E]:
            return isinstance(event, kind) and event.hashlock == hashlock and where(event)

        for i, event in enumerate(self._backlog):
            if matches(event):
                del self._backlog[i]
                return event
        async with asyncio.timeout(WAIT_S):
            async for event in self._events:
                if matches(event):
                    return event
                self._backlog.append(event)
        raise AssertionError("event stream ended")

    async def synced(self) -> None:
        height = await self.node.rpc("getblockcount")
        async with asyncio.timeout(WAIT_S):
            await self.a.wait_for_tip(height)

    async def persist_and_broadcast(self, tx: SignedTx) -> str:
        """The engine's write-ahead: journal the signed transaction, broadcast it (S4), mark it broadcast
        (from then on the adapter's rebroadcaster keeps it moving, a claim too)."""
        assert self.store is not None
        async with self.store.write() as w:
            await w.record_signed_tx(tx)
        txid = await self.a.broadcast(tx)
        async with self.store.write() as w:
            await w.mark_tx(tx.txid, TxStatus.BROADCAST, chain=tx.chain)
        return txid


def new_secret() -> tuple[bytes, bytes]:
    secret = os.urandom(32)
    return secret, sha256(secret)


def terms_between(sender: Desk, recipient: Desk, hashlock: bytes, amount: int, blocks: int) -> HtlcTerms:
    return HtlcTerms(
        chain="bitcoin",
        asset="BTC",
        amount=amount,
        hashlock=hashlock,
        recipient=recipient.a.party(hashlock),
        sender=sender.a.party(hashlock),
        timelock=sender.a.tip + blocks,
    )
