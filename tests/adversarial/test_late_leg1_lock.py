"""Attack: leg 1 locked after the window to lock it closed (issue 11).

The initiator's node goes down right after the acceptance, so its lock of leg 1 cannot be built. While
it is down, the swap's window passes: the participant gives up (too little of leg 2's window is left to
lock it). Once the node is back, the initiator used to build and broadcast leg 1 all the same, then
refund it at its deadline: two fees, and the funds held for the whole leg. The timing checks now run
again right before a lock is built (and right before it is broadcast): the initiator gives up too.

The second attack closes the window while the lock is being signed (a node answering slowly): the signed
lock holds no account nonce, so it is journaled as dropped and never handed to a node, by the engine or
by the adapter's rebroadcaster. It runs on the fake chain of ``settlerd.testing``, which signs
UTXO-style transactions, as Bitcoin's are.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from web3 import AsyncWeb3

from settlerd.adapters import HtlcTerms, SignedTx
from settlerd.engine import Capture, CaptureSettings, Engine, LegRequest, NodeKey, OfferRequest
from settlerd.store import Store, TxStatus
from settlerd.swap import Status
from settlerd.testing import FakeChain, FakeChainAdapter
from tests.fixtures.node_gate import NodeGate
from tests.integration.engine.conftest import (
    POLICY,
    Clock,
    MakeDesk,
    clock,
    fresh_keys,
    gate,
    htlc_address,
    make_desk,
    miner,
    token,
    w3,
)
from tests.integration.engine.test_settle import ETH_AMOUNT, TOKEN_AMOUNT, wait_status

__all__ = ["clock", "fresh_keys", "gate", "htlc_address", "make_desk", "miner", "token", "w3"]

# Leg 2 lasts 30 minutes and the policy wants at least 10 of them left before leg 1 is locked (and 5
# before leg 2 is): 26 minutes later neither desk may lock any more.
OUTAGE = timedelta(minutes=26)
# Long enough for a few of the initiator's ticks to fail against the dead node.
FAILING_TICKS_S = 1.5
# How much longer the node stays down: an attempt to lock under way when the window closed fails within
# about 2 s (web3 retries a refused connection with backoff), and the next tick's attempt is refused.
OUTAGE_REST_S = 15.0


async def test_no_leg1_lock_once_its_window_closed_while_the_node_was_down(
    make_desk: MakeDesk, miner: None, token: Any, w3: AsyncWeb3, clock: Clock, gate: NodeGate
) -> None:
    a = await make_desk("desk-a", rpc_urls={"eth": gate.url})
    b = await make_desk("desk-b")
    give, get = LegRequest("eth", "ETH", ETH_AMOUNT), LegRequest("usd", token.address, TOKEN_AMOUNT)
    offer = await a.capture.create_offer(OfferRequest(b.name, give, get))
    acceptance = await b.capture.accept_offer(offer)
    swap_id = str(offer["swap_id"])
    balance = await w3.eth.get_balance(a.address("eth"))
    nonce = await w3.eth.get_transaction_count(a.address("eth"))

    await gate.down()  # the initiator's leg 1 node goes away as the swap is accepted
    await a.capture.register_acceptance(swap_id, acceptance)
    await asyncio.sleep(FAILING_TICKS_S)
    clock.advance(OUTAGE)
    # The participant's window to lock leg 2 passed during the outage: it gives up.
    assert await wait_status(b, swap_id, Status.CANCELLED) == Status.CANCELLED
    # So does the initiator, node or no node, once an attempt to lock finds the window closed.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wait_status(a, swap_id, Status.CANCELLED), OUTAGE_REST_S)
    await gate.open()

    locked = (Status.LEG1_LOCKING, Status.LEG1_LOCKED, Status.LEG1_FINAL)
    ended = await wait_status(a, swap_id, Status.CANCELLED, *locked)
    assert ended == Status.CANCELLED, "the initiator locked leg 1 after its window had closed"
    events = await a.store.events(swap_id=swap_id, limit=None)
    [refused] = [e for e in events if e.kind == "lock_refused"]
    assert "window to lock leg 1 closed" in refused.payload["event"]["reason"]
    assert "lock_broadcast" not in {e.kind for e in events}
    assert not [t for t in await a.store.signed_txs(swap_id=swap_id) if t.status != "dropped"]
    # Nothing of leg 1 reached the chain: no transaction sent from the initiator's account.
    await asyncio.sleep(1.0)  # a lock sent at the last moment would be mined by now (automine)
    assert await w3.eth.get_transaction_count(a.address("eth")) == nonce
    assert await w3.eth.get_balance(a.address("eth")) == balance


@dataclass
class SettableClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


class SlowSigner(FakeChainAdapter):
    """A node so slow that the window to lock closes while the lock is being signed."""

    clock: SettableClock

    async def build_lock(self, terms: HtlcTerms) -> SignedTx:
        signed = await super().build_lock(terms)
        self.clock.now += OUTAGE
        return signed


@dataclass
class FakeDesk:
    engine: Engine
    capture: Capture
    store: Store
    adapters: dict[str, FakeChainAdapter]


async def fake_desk(
    name: str, chains: list[FakeChain], clock: SettableClock, tmp_path: Path, signer: type[FakeChainAdapter]
) -> FakeDesk:
    store = await Store.open(str(tmp_path / f"{name}.sqlite3"))
    adapters: dict[str, FakeChainAdapter] = {}
    for chain in chains:
        adapter = signer(chain, chain.account(name), store, finality_depth=1)
        if isinstance(adapter, SlowSigner):
            adapter.clock = clock
        chain.fund(adapter.account, chain.native_asset, 10 * ETH_AMOUNT)
        await adapter.start()
        adapters[chain.name] = adapter
    engine = Engine(store, adapters, tick=timedelta(seconds=0.05), clock=clock)
    settings = CaptureSettings(
        node_id=name,
        leg1_duration=timedelta(minutes=60),
        leg2_duration=timedelta(minutes=30),
        policy=POLICY,
        finality_depth={chain.name: 1 for chain in chains},
        counterparty_keys={},
        allow_unknown_counterparties=True,
    )
    return FakeDesk(engine, Capture(engine, NodeKey(secrets.token_bytes(32)), settings), store, adapters)


async def test_a_lock_signed_after_its_window_closed_is_never_broadcast(tmp_path: Path) -> None:
    one, two = FakeChain("one", native_asset="ONE"), FakeChain("two", native_asset="TWO")
    clock = SettableClock(one.genesis_time + timedelta(minutes=1))
    a = await fake_desk("desk-a", [one, two], clock, tmp_path, SlowSigner)
    b = await fake_desk("desk-b", [one, two], clock, tmp_path, FakeChainAdapter)
    give, get = LegRequest("one", "ONE", ETH_AMOUNT), LegRequest("two", "TWO", ETH_AMOUNT)
    offer = await a.capture.create_offer(OfferRequest("desk-b", give, get))
    acceptance = await b.capture.accept_offer(offer)
    swap_id = str(offer["swap_id"])

    async with asyncio.TaskGroup() as tasks:
        running = [tasks.create_task(a.engine.run(), name="engine-a")]
        running += [tasks.create_task(x.run(), name=f"a-{x.name}") for x in a.adapters.values()]
        await a.capture.register_acceptance(swap_id, acceptance)
        ended = await asyncio.wait_for(_ended(a.store, swap_id), 10.0)
        await asyncio.sleep(0.5)  # the adapter's rebroadcaster goes over the journal meanwhile
        for task in running:
            task.cancel()

    assert ended == Status.CANCELLED, "the lock signed after its window closed went out"
    events = await a.store.events(swap_id=swap_id, limit=None)
    [refused] = [e for e in events if e.kind == "lock_refused"]
    assert "window to lock leg 1 closed" in refused.payload["event"]["reason"]
    [lock] = await a.store.signed_txs(swap_id=swap_id)
    assert (lock.purpose, lock.status) == ("lock", TxStatus.DROPPED)
    assert one.find_tx(lock.txid) is None and one.mempool == []
    for desk in (a, b):
        await desk.store.close()


async def _ended(store: Store, swap_id: str) -> str:
    """The swap's status once its lock was either refused or sent."""
    while True:
        row = await store.get_swap(swap_id)
        assert row is not None
        if row.status in (Status.CANCELLED, Status.LEG1_LOCKING, Status.LEG1_LOCKED):
            return row.status
        await asyncio.sleep(0.02)
