"""The fake chain and its adapter: consensus, the scanner's events and the bad-node switches."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import pytest

from settlerd.adapters import (
    ChainAdapter,
    ChainEvent,
    Claimed,
    HtlcFact,
    HtlcSpent,
    HtlcTerms,
    Locked,
    Refunded,
    Reorged,
    Tip,
)
from settlerd.testing import FakeChain, FakeChainAdapter, FakeNodeError, TxRejected

AMOUNT = 1_000
SECRET = b"s" * 32
HASHLOCK = hashlib.sha256(SECRET).digest()


async def pair(chain: FakeChain) -> tuple[FakeChainAdapter, FakeChainAdapter]:
    alice = FakeChainAdapter(chain, chain.account("alice"))
    bob = FakeChainAdapter(chain, chain.account("bob"))
    for adapter in (alice, bob):
        chain.fund(adapter.account, chain.native_asset, 10 * AMOUNT)
        await adapter.start()
    return alice, bob


def terms_of(chain: FakeChain, alice: FakeChainAdapter, bob: FakeChainAdapter, blocks: int = 10) -> HtlcTerms:
    return HtlcTerms(
        chain.name, chain.native_asset, AMOUNT, HASHLOCK, bob.account, alice.account, chain.height + blocks
    )


async def poll(adapter: FakeChainAdapter) -> list[ChainEvent]:
    await adapter.poll()
    return adapter.take_events()


async def scanned(adapter: FakeChainAdapter) -> list[tuple[type[ChainEvent], int]]:
    return [(type(e), 0 if isinstance(e, Tip | Reorged) else e.confirmations) for e in await poll(adapter)]


def undone(events: list[ChainEvent]) -> list[tuple[type[ChainEvent], HtlcFact | None]]:
    return [(type(e), e.undoes if isinstance(e, Reorged) else None) for e in events]


async def test_is_a_chain_adapter() -> None:
    chain = FakeChain()
    assert isinstance(FakeChainAdapter(chain, chain.account("a")), ChainAdapter)


async def test_lock_claim_and_balances() -> None:
    chain = FakeChain(fee_rate=7)
    alice, bob = await pair(chain)
    terms = terms_of(chain, alice, bob)
    bob.watch(terms)
    lock = await alice.build_lock(terms)
    assert chain.mempool == [] and chain.balance(alice.account, "FAKE") == 10 * AMOUNT, "signing only"
    await alice.broadcast(lock)
    assert await alice.spendable("FAKE") == 9 * AMOUNT - 7
    chain.mine()
    assert await scanned(bob) == [(Locked, 1), (Tip, 0)]
    chain.mine()
    assert await scanned(bob) == [(Locked, 2), (Tip, 0)]
    chain.mine()
    assert await scanned(bob) == [(Tip, 0)], "final at depth 2: no more depth reports"

    claim = await bob.build_claim(terms, lock.htlc_id, SECRET)
    await bob.broadcast(claim)
    [seen] = [e for e in await poll(bob) if isinstance(e, Claimed)]
    assert (seen.preimage, seen.confirmations, seen.block_hash) == (SECRET, 0, None), "seen in the mempool"
    chain.mine()
    assert await scanned(bob) == [(Claimed, 1), (Tip, 0)]
    assert chain.balance(bob.account, "FAKE") == 11 * AMOUNT - 7
    refund = await alice.build_refund(terms, f"{lock.htlc_id}x")
    with pytest.raises(TxRejected, match="no HTLC"):
        await alice.broadcast(refund)
    # The spend is found and handed on as an event: the engine learns the outcome from there (S3).
    with pytest.raises(HtlcSpent, match="claimed"):
        await alice.build_refund(terms, lock.htlc_id)
    assert [(type(e), getattr(e, "txid", None)) for e in alice.take_events()][-1] == (Claimed, claim.txid)


async def test_a_claim_needs_the_preimage_and_the_recipient() -> None:
    chain = FakeChain()
    alice, bob = await pair(chain)
    terms = terms_of(chain, alice, bob)
    lock = await alice.build_lock(terms)
    await alice.broadcast(lock)
    chain.mine()
    with pytest.raises(ValueError, match="preimage"):
        await bob.build_claim(terms, lock.htlc_id, b"x" * 32)
    with pytest.raises(TxRejected, match="recipient"):
        await alice.broadcast(await alice.build_claim(terms, lock.htlc_id, SECRET))


async def test_refund_only_above_the_timelock_and_times_are_exact() -> None:
    chain = FakeChain(block_interval=timedelta(minutes=10))
    alice, bob = await pair(chain)
    terms = terms_of(chain, alice, bob, blocks=3)
    bounds = await alice.bounds_of(terms.timelock)
    assert bounds.earliest == bounds.latest == chain.time + timedelta(minutes=30)
    assert await alice.timelock_for(bounds.earliest) == terms.timelock
    assert await alice.timelock_for(chain.time + timedelta(minutes=21)) == terms.timelock
    await alice.broadcast(lock := await alice.build_lock(terms))
    chain.mine()
    refund = await alice.build_refund(terms, lock.htlc_id)
    assert (await alice.time_left(terms.timelock)).earliest == timedelta(minutes=20)
    with pytest.raises(TxRejected, match="non-final"):
        await alice.broadcast(refund)
    chain.mine(2)
    assert (await alice.time_left(terms.timelock)).latest == timedelta(0)
    await alice.broadcast(refund)
    bob.watch(terms)
    chain.mine()
    kinds = [type(e) for e in await poll(bob)]
    assert kinds == [Locked, Refunded, Tip], "a late watch finds the lock and its refund"


async def test_broadcast_is_idempotent() -> None:
    chain = FakeChain()
    alice, bob = await pair(chain)
    lock = await alice.build_lock(terms_of(chain, alice, bob))
    for _ in range(2):
        await alice.broadcast(lock)
    chain.mine()
    await alice.broadcast(lock)
    assert chain.mempool == [] and chain.balance(alice.account, "FAKE") == 9 * AMOUNT - chain.fee_rate


async def test_a_reorg_undoes_and_redoes_in_order() -> None:
    chain = FakeChain()
    alice, bob = await pair(chain)
    terms = terms_of(chain, alice, bob)
    bob.watch(terms)
    lock = await alice.build_lock(terms)
    await alice.broadcast(lock)
    chain.mine()
    first = [e for e in await poll(bob) if isinstance(e, Locked)]

    chain.reorg(1)  # the lock is mined again in the new branch
    found = await poll(bob)
    assert undone(found) == [(Reorged, HtlcFact.LOCKED), (Locked, None), (Tip, None)]
    assert found[0].block_hash == first[0].block_hash != found[1].block_hash
    assert found[1].confirmations == 2 and found[1].htlc_id == first[0].htlc_id

    chain.reorg(2, drop=[lock.txid])  # now it is gone for good
    assert [type(e) for e in await poll(bob)] == [Reorged, Tip]
    assert chain.balance(alice.account, "FAKE") == 10 * AMOUNT and chain.mempool == []


async def test_a_reorg_returns_a_claim_to_the_mempool() -> None:
    chain = FakeChain()
    alice, bob = await pair(chain)
    terms = terms_of(chain, alice, bob)
    bob.watch(terms)
    await alice.broadcast(lock := await alice.build_lock(terms))
    chain.mine(2)
    await bob.broadcast(claim := await bob.build_claim(terms, lock.htlc_id, SECRET))
    chain.mine()
    await bob.poll()
    bob.take_events()
    chain.reorg(1, length=1, drop=[claim.txid])
    assert undone(await poll(bob)) == [(Reorged, HtlcFact.CLAIMED), (Tip, None)]
    assert chain.htlc(lock.htlc_id).spent_by is None  # type: ignore[union-attr]


async def test_low_fees_stay_in_the_mempool() -> None:
    chain = FakeChain(fee_rate=5)
    alice, bob = await pair(chain)
    await alice.broadcast(lock := await alice.build_lock(terms_of(chain, alice, bob)))
    chain.min_fee = 6
    chain.mine()
    assert [t.txid for t in chain.mempool] == [lock.txid]
    chain.min_fee = 5
    chain.mine()
    assert chain.mempool == [] and chain.find_tx(lock.txid) == (chain.block(2).txs[0], 2)


async def test_check_terms_names_each_field() -> None:
    chain = FakeChain(tokens=["USD"])
    alice, bob = await pair(chain)
    good = terms_of(chain, alice, bob)
    assert alice.check_terms(good) == [] and alice.canonical_asset("usd") == "USD"
    bad = HtlcTerms(chain.name, "EUR", 0, HASHLOCK, alice.account.upper(), "", 2**40)
    assert [p.split(":")[0] for p in alice.check_terms(bad)] == [
        "recipient", "sender", "asset", "amount", "timelock",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="EUR"):
        alice.canonical_asset("EUR")


async def test_a_hung_node_blocks_its_calls_and_a_failing_one_raises() -> None:
    chain = FakeChain()
    alice, _ = await pair(chain)
    alice.fail_next(2)
    for _ in range(2):
        with pytest.raises(FakeNodeError):
            await alice.spendable("FAKE")
    assert await alice.spendable("FAKE") == 10 * AMOUNT
    alice.hang()
    call = asyncio.ensure_future(alice.spendable("FAKE"))
    await asyncio.sleep(0.05)
    assert not call.done()
    alice.unhang()
    assert await call == 10 * AMOUNT


async def test_run_wakes_on_a_new_block_and_ends_on_a_node_failure() -> None:
    chain = FakeChain()
    alice = FakeChainAdapter(chain, chain.account("alice"), poll_interval_s=60)
    await alice.start()
    task = asyncio.create_task(alice.run())
    await asyncio.sleep(0)
    chain.mine()
    async with asyncio.timeout(1):
        event = await anext(aiter(alice.events()))
    assert (type(event), event.height) == (Tip, 1), "a new block is scanned at once, not a poll later"
    alice.fail_next()
    chain.mine()
    with pytest.raises(FakeNodeError):
        await asyncio.wait_for(task, 1)
    await alice.close()
