"""Attacks on the Bitcoin adapter's journal handling: a reveal its rebroadcaster sent on its own, and coins
a lock that never existed kept out of every later lock.

1. The initiator journals its claim of leg 2 and its node goes away before the claim reaches it. The
   adapter's rebroadcaster used to send every unconfirmed journal entry on the next block, the claim
   included, with no look at whether the secret may still be revealed (leg 2's refund may open by then):
   the participant could refund leg 2 and claim leg 1 with the secret. A claim the engine never sent is
   now the engine's to send first, after that check.
2. A lock signed but never journaled (the store failed right after the coins were picked), or journaled
   as dropped (its window to lock closed while it was being signed), kept its coins reserved until a
   restart: every later lock of the desk saw a smaller balance, and a desk whose balance it was could not
   lock at all.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from settlerd_bitcoin import BitcoinAdapter, BitcoinSettings

from settlerd.adapters import ChainAdapter, HtlcTerms, Locked, SignedTx
from settlerd.engine import Capture, CaptureSettings, Engine, LegRequest, NodeKey, OfferRequest
from settlerd.store import Store, TxStatus
from settlerd.swap import Status
from settlerd.testing import FakeChain, FakeChainAdapter
from tests.adversarial.test_late_leg1_lock import OUTAGE, SettableClock
from tests.fixtures.timeouts import TIMEOUT_FACTOR
from tests.integration.bitcoin.conftest import desks
from tests.integration.bitcoin.desks import Desk, new_secret, terms_between
from tests.integration.engine.conftest import POLICY

__all__ = ["desks"]

pytestmark = pytest.mark.bitcoind

AMOUNT = 1_000_000  # sat
Desks = tuple[Desk, Desk]
# The regtest chain here is mined only when a test says so: its blocks are taken to come every minute.
STEADY = {"block_interval": 60.0, "block_arrivals": "steady", "poll_interval": 0.05, "finality_depth": 1}
WAIT_S = 30.0 * TIMEOUT_FACTOR


async def test_a_journaled_claim_never_sent_is_not_rebroadcast(desks: Desks, bitcoin_node: Any) -> None:
    alice, bob = desks
    secret, h = new_secret()
    terms = terms_between(alice, bob, h, AMOUNT, 60)
    alice.a.watch(terms)
    bob.a.watch(terms)
    await alice.persist_and_broadcast(await alice.a.build_lock(terms))
    await bitcoin_node.mine(1)
    locked = await bob.expect(Locked, h, lambda e: e.confirmations == 1)

    claim = await bob.a.build_claim(terms, locked.htlc_id, secret)
    assert bob.store is not None
    async with bob.store.write() as w:
        await w.record_signed_tx(claim)  # journaled; the node went away before the broadcast
    await bitcoin_node.mine(2)  # new tips: the rebroadcaster goes over the journal
    await bob.synced()

    assert claim.txid not in await bitcoin_node.rpc("getrawmempool"), "the rebroadcaster revealed the secret"
    assert claim.txid in await bob.store.unsent("bitcoin")


async def test_a_lock_never_journaled_leaves_its_coins_spendable(desks: Desks) -> None:
    alice, bob = desks
    _, h = new_secret()
    terms = terms_between(alice, bob, h, AMOUNT, 60)
    before = await alice.a.spendable("BTC")
    save = alice.a.scanner.save

    async def store_fails() -> None:
        raise OSError("disk full")

    alice.a.scanner.save = store_fails  # type: ignore[method-assign]
    try:
        with pytest.raises(OSError, match="disk full"):
            await alice.a.build_lock(terms)
    finally:
        alice.a.scanner.save = save  # type: ignore[method-assign]

    assert await alice.a.spendable("BTC") == before, "coins of a lock that never existed stay reserved"


class SlowSigner(BitcoinAdapter):
    """A node so slow that the window to lock closes while the lock is being signed."""

    clock: SettableClock

    async def build_lock(self, terms: HtlcTerms) -> SignedTx:
        signed = await super().build_lock(terms)
        self.clock.now += OUTAGE
        return signed


async def test_a_lock_dropped_after_signing_leaves_its_coins_spendable(
    bitcoin_node: Any, tmp_path: Path
) -> None:
    clock = SettableClock(datetime.now(UTC))
    two = FakeChain("two", native_asset="TWO", genesis_time=clock.now - timedelta(minutes=1))
    birthday = await bitcoin_node.rpc("getblockcount") + 1
    engines, captures, stores, loops = [], [], [], []
    slow: SlowSigner | None = None
    for name in ("desk-a", "desk-b"):
        store = await Store.open(str(tmp_path / f"{name}.sqlite3"))
        node = {"rpc_url": bitcoin_node.rpc_url, "rpc_user": bitcoin_node.rpc_user}
        node |= {"rpc_password": bitcoin_node.rpc_password, "network": "regtest", "name": "bitcoin"}
        node |= {"seed": os.urandom(32).hex(), "birthday_height": birthday, **STEADY}
        signer = SlowSigner if slow is None else BitcoinAdapter
        btc = signer(BitcoinSettings.from_mapping(node), store)
        if isinstance(btc, SlowSigner):
            btc.clock, slow = clock, btc
        fake = FakeChainAdapter(two, two.account(name), store, finality_depth=1)
        two.fund(fake.account, "TWO", 10 * AMOUNT)
        adapters: dict[str, ChainAdapter] = {"bitcoin": btc, "two": fake}
        for adapter in adapters.values():
            await adapter.start()
        engine = Engine(store, adapters, tick=timedelta(seconds=0.05), clock=clock)
        settings = CaptureSettings(
            node_id=name,
            leg1_duration=timedelta(minutes=60),
            leg2_duration=timedelta(minutes=30),
            policy=POLICY,
            finality_depth={"bitcoin": 1, "two": 1},
            counterparty_keys={},
            allow_unknown_counterparties=True,
        )
        engines.append(engine)
        captures.append(Capture(engine, NodeKey(secrets.token_bytes(32)), settings))
        stores.append(store)
        loops.append(adapters)
    assert slow is not None
    await bitcoin_node.fund(await slow.receive_address(), 5 * AMOUNT)
    await bitcoin_node.mine(1)
    await slow.scanner.sync()
    before = await slow.spendable("BTC")
    assert before == 5 * AMOUNT

    offer = await captures[0].create_offer(
        OfferRequest("desk-b", LegRequest("bitcoin", "BTC", AMOUNT), LegRequest("two", "TWO", AMOUNT))
    )
    acceptance = await captures[1].accept_offer(offer)
    swap_id = str(offer["swap_id"])
    async with asyncio.TaskGroup() as tasks:
        running = [tasks.create_task(engines[0].run(), name="engine-a")]
        running += [tasks.create_task(x.run(), name=f"a-{x.name}") for x in loops[0].values()]
        await captures[0].register_acceptance(swap_id, acceptance)
        status = await asyncio.wait_for(_ended(stores[0], swap_id), WAIT_S)
        for task in running:
            task.cancel()

    assert status == Status.CANCELLED, "the lock signed after its window closed went out"
    [lock] = await stores[0].signed_txs(swap_id=swap_id)
    assert (lock.purpose, lock.status) == ("lock", TxStatus.DROPPED)
    assert await slow.spendable("BTC") == before, "the dropped lock's coins stay reserved"
    for adapters, store in zip(loops, stores, strict=True):
        for adapter in adapters.values():
            await adapter.close()
        await store.close()


async def _ended(store: Store, swap_id: str) -> str:
    """The swap's status once its lock was either refused or sent."""
    while True:
        row = await store.get_swap(swap_id)
        assert row is not None
        if row.status in (Status.CANCELLED, Status.LEG1_LOCKING, Status.LEG1_LOCKED):
            return row.status
        await asyncio.sleep(0.02)
