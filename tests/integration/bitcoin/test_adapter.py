"""The Bitcoin adapter against a real regtest node (the kernel stand-in, or bitcoind when on PATH)."""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from settlerd_bitcoin import factory
from settlerd_bitcoin.htlc import Htlc, sha256
from settlerd_bitcoin.records import sats
from settlerd_bitcoin.rpc import NodeAuthRefused, NodeUnavailable, RpcClient, RpcError
from settlerd_bitcoin.txbuild import OutPoint, htlc_spend

from settlerd.adapters import (
    ChainAdapter,
    Claimed,
    HtlcFact,
    HtlcTerms,
    Locked,
    Purpose,
    Refunded,
    Reorged,
    SignedTx,
    find,
)
from tests.integration.bitcoin.desks import Desk, new_secret, terms_between

pytestmark = pytest.mark.bitcoind

AMOUNT = 1_000_000  # sat
Desks = tuple[Desk, Desk]


async def lock(
    alice: Desk, bob: Desk, blocks: int = 60, hashlock: bytes | None = None
) -> tuple[bytes, HtlcTerms, SignedTx]:
    secret, h = new_secret()
    terms = terms_between(alice, bob, hashlock or h, AMOUNT, blocks)
    alice.a.watch(terms)
    bob.a.watch(terms)
    tx = await alice.a.build_lock(terms)
    await alice.persist_and_broadcast(tx)
    return secret, terms, tx


async def test_lock_claim_and_preimage_seen_in_the_mempool(desks: Desks, bitcoin_node: Any) -> None:
    alice, bob = desks
    secret, terms, lock_tx = await lock(alice, bob)
    h = terms.hashlock
    await bitcoin_node.mine(1)
    locked = await bob.expect(Locked, h, lambda e: e.confirmations == 1)
    assert (locked.htlc_id, locked.amount, locked.txid) == (lock_tx.htlc_id, AMOUNT, lock_tx.txid)
    assert locked.found == terms  # the terms as read back from the chain: what the engine compares
    assert await alice.a.broadcast(lock_tx) == lock_tx.txid  # once more, after it was mined: harmless

    claim = await bob.a.build_claim(terms, locked.htlc_id, secret)
    await bob.persist_and_broadcast(claim)
    assert await bob.a.broadcast(claim) == claim.txid  # twice in the mempool: harmless
    seen = await alice.expect(Claimed, h)
    assert (seen.confirmations, seen.txid, seen.preimage, seen.block_hash) == (0, claim.txid, secret, None)

    await bitcoin_node.mine(1)
    mined = await alice.expect(Claimed, h, lambda e: e.confirmations == 1)
    assert mined.preimage == secret
    assert mined.block_hash == await bitcoin_node.rpc("getblockhash", mined.height)
    await bob.synced()
    claimed_to_bob = sum(u.value for u in bob.a.wallet.spendable(bob.a.tip))
    assert claimed_to_bob == AMOUNT - claim.meta["fee"]


async def test_refund_is_non_final_before_the_timelock_and_valid_after(
    desks: Desks, bitcoin_node: Any
) -> None:
    alice, bob = desks
    _, terms, _ = await lock(alice, bob, blocks=5)
    await bitcoin_node.mine(1)
    locked = await alice.expect(Locked, terms.hashlock)
    refund = await alice.a.build_refund(terms, locked.htlc_id)
    with pytest.raises(RpcError) as refused:
        await alice.persist_and_broadcast(refund)
    assert "non-final" in refused.value.message

    # A transaction with nLockTime = timelock may enter the block after height timelock.
    await bitcoin_node.mine(terms.timelock - await bitcoin_node.rpc("getblockcount"))
    await alice.synced()
    assert await alice.a.broadcast(refund) == refund.txid
    await bitcoin_node.mine(1)
    refunded = await bob.expect(Refunded, terms.hashlock, lambda e: e.confirmations == 1)
    assert (refunded.txid, refunded.htlc_id) == (refund.txid, locked.htlc_id)


async def test_wrong_or_33_byte_preimage_cannot_spend(desks: Desks, bitcoin_node: Any) -> None:
    alice, bob = desks
    long_secret = os.urandom(33)
    _, terms, _ = await lock(alice, bob)
    _, long_terms, _ = await lock(alice, bob, hashlock=sha256(long_secret))
    await bitcoin_node.mine(1)
    locked = await bob.expect(Locked, terms.hashlock)
    long_locked = await bob.expect(Locked, long_terms.hashlock)

    with pytest.raises(ValueError, match="does not match"):
        await bob.a.build_claim(long_terms, long_locked.htlc_id, long_secret)

    destination = bytes([0, 20]) + bytes(20)
    attempts = [(terms, locked.htlc_id, os.urandom(32)), (long_terms, long_locked.htlc_id, long_secret)]
    for t, htlc_id, selector in attempts:
        htlc = Htlc(t.hashlock, bytes.fromhex(t.recipient), bytes.fromhex(t.sender), t.timelock)
        key = bob.a.keys.swap_key(t.hashlock)
        tx, _ = htlc_spend(htlc, OutPoint.parse(htlc_id), AMOUNT, key, destination, 5.0, selector, 0)
        verdict = (await bitcoin_node.rpc("testmempoolaccept", [tx.serialize().hex()]))[0]
        assert verdict["allowed"] is False
        assert "script-verify" in verdict["reject-reason"]
        with pytest.raises(RpcError) as refused:
            await bob.a.broadcast(SignedTx("bitcoin", tx.txid, tx.serialize(), Purpose.CLAIM, htlc_id))
        assert refused.value.code == -26


async def test_reorg_that_removes_the_funding_is_reported(desks: Desks, bitcoin_node: Any) -> None:
    alice, bob = desks
    _, terms, lock_tx = await lock(alice, bob)
    await bitcoin_node.mine(1)
    locked = await bob.expect(Locked, terms.hashlock, lambda e: e.confirmations == 1)
    await bitcoin_node.reorg(1)
    undone = await bob.expect(Reorged, terms.hashlock)
    assert (undone.undoes, undone.htlc_id, undone.txid) == (HtlcFact.LOCKED, locked.htlc_id, lock_tx.txid)
    assert undone.height == locked.height - 1
    await bitcoin_node.mine(
        1
    )  # the funding is mined again from the mempool (or rebroadcast from the journal)
    again = await bob.expect(Locked, terms.hashlock)
    assert again.htlc_id == locked.htlc_id and again.block_hash != locked.block_hash


async def test_restart_midway_loses_nothing(desks: Desks, bitcoin_node: Any) -> None:
    alice, bob = desks
    first_secret, h1 = new_secret()
    first = terms_between(alice, bob, h1, AMOUNT, 60)
    alice.a.watch(first)
    bob.a.watch(first)
    lock1 = await alice.a.build_lock(first)
    async with alice.store.write() as w:  # type: ignore[union-attr]
        await w.record_signed_tx(lock1)  # journalled, then the daemon dies before broadcasting

    await alice.restart()
    assert [t.txid for t in await alice.store.unconfirmed_txs("bitcoin")].count(lock1.txid) == 1  # type: ignore[union-attr]
    _, second, lock2 = await lock(alice, bob)  # must not reuse the coins of the journalled lock
    assert not set(lock1.meta["inputs"]) & set(lock2.meta["inputs"])
    assert await alice.a.broadcast(lock1) == lock1.txid  # what the engine does with its journal on start
    await bitcoin_node.mine(1)
    locked = await bob.expect(Locked, h1, lambda e: e.confirmations == 1)

    await bob.restart()
    await bitcoin_node.mine(2)
    await bob.synced()
    bob.a.watch(first)  # the engine watches its live swaps again after a start
    deep = await bob.expect(Locked, h1, lambda e: e.confirmations == 3)
    assert (deep.htlc_id, deep.amount, deep.height) == (locked.htlc_id, AMOUNT, locked.height)
    claim = await bob.a.build_claim(first, locked.htlc_id, first_secret)
    await bob.persist_and_broadcast(claim)
    alice.a.watch(first)
    seen = await alice.expect(Claimed, h1)
    assert seen.preimage == first_secret
    await bitcoin_node.mine(1)
    await alice.expect(Locked, second.hashlock)


async def test_unconfirmed_claim_is_fee_bumped_near_its_deadline(desks: Desks, bitcoin_node: Any) -> None:
    alice, bob = desks
    secret, terms, _ = await lock(alice, bob, blocks=20)
    await bitcoin_node.mine(1)
    locked = await bob.expect(Locked, terms.hashlock)
    claim = await bob.a.build_claim(terms, locked.htlc_id, secret)
    await bob.persist_and_broadcast(claim)
    await alice.expect(Claimed, terms.hashlock, lambda e: e.txid == claim.txid)

    # Blocks without the claim: the deadline nears and Bob's adapter replaces it with a higher fee.
    await bitcoin_node.rpc("generateblock", await alice.a.receive_address(), [])
    await bob.synced()
    replacement = bob.a.replacement_of(claim.txid)
    assert replacement is not None and replacement != claim.txid
    mempool = await bitcoin_node.rpc("getrawmempool")
    assert replacement in mempool and claim.txid not in mempool
    bumped = await bitcoin_node.rpc("getrawtransaction", replacement, True)
    bumped_fee = AMOUNT - sats(bumped["vout"][0]["value"])
    assert Decimal(bumped_fee) / bumped["vsize"] > Decimal(claim.meta["fee_rate"])

    await bitcoin_node.mine(1)
    mined = await bob.expect(Claimed, terms.hashlock, lambda e: e.confirmations == 1)
    assert (mined.txid, mined.preimage) == (replacement, secret)


async def test_adapter_is_a_chain_adapter_found_by_entry_point(desks: Desks) -> None:
    alice, _ = desks
    assert isinstance(alice.a, ChainAdapter)
    assert find("bitcoin").factory is factory
    assert await alice.a.spendable("BTC") == alice.a.wallet.balance(alice.a.tip) > 0
    # Conservative conversions: a refund opens before the deadline it was made for with probability 1e-6.
    deadline = datetime.now(UTC) + timedelta(hours=24)
    timelock = await alice.a.timelock_for(deadline)
    bounds = await alice.a.bounds_of(timelock)
    assert bounds.probability == 1e-6
    assert deadline - timedelta(seconds=1) <= bounds.earliest < deadline + timedelta(minutes=10)
    assert timelock - alice.a.tip >= 144  # at least the blocks 24 h take at the 10-minute target
    # The blocks that take a day at the earliest (but one in a million) may take nearly two days to mine.
    assert bounds.latest - bounds.earliest > timedelta(hours=20)


async def test_time_left_bounds_both_ways_from_the_nodes_tip(desks: Desks, bitcoin_node: Any) -> None:
    alice, bob = desks
    _, terms, _ = await lock(alice, bob, blocks=4)
    await bitcoin_node.mine(1)
    locked = await alice.expect(Locked, terms.hashlock)
    refund = await alice.a.build_refund(terms, locked.htlc_id)
    # The refund enters the mempool once block ``timelock`` is mined: the time to mine the blocks to it is
    # Gamma-distributed, bounded on both sides at the stated probability.
    to_go = terms.timelock - await bitcoin_node.rpc("getblockcount")
    assert to_go > 1
    for extra in (0, 10):
        left = await alice.a.time_left(terms.timelock + extra)
        earliest, latest = alice.a.block_times.bounds(to_go + extra)
        assert left.earliest == timedelta(seconds=earliest)
        assert timedelta(seconds=latest) <= left.latest < timedelta(seconds=latest + 5)

    # Read from the node's tip, not from the scanner's (not waited for here).
    await bitcoin_node.mine(to_go - 1)
    # The next block opens it.
    assert (await alice.a.time_left(terms.timelock)).earliest < timedelta(seconds=1)
    with pytest.raises(RpcError) as refused:
        await alice.persist_and_broadcast(refund)
    assert "non-final" in refused.value.message
    await bitcoin_node.mine(1)
    assert (await alice.a.time_left(terms.timelock)).earliest == timedelta(0)
    assert await alice.a.broadcast(refund) == refund.txid
    await bitcoin_node.mine(1)
    await bob.expect(Refunded, terms.hashlock, lambda e: e.confirmations == 1)


async def test_calls_ride_out_a_node_restart(fresh_bitcoin_node: Any) -> None:
    node = fresh_bitcoin_node
    await node.mine(3)
    client = RpcClient(node.rpc_url, node.rpc_user, node.rpc_password)
    await node.stop()
    pending = asyncio.create_task(client.call("getblockcount"), name="rpc-during-restart")
    try:
        await node.start()
        assert await pending == 3
    finally:
        pending.cancel()
        await client.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_rpc_errors_name_the_node(bitcoin_node: Any) -> None:
    refused = RpcClient(bitcoin_node.rpc_url, "settlerd", "not-the-password")
    with pytest.raises(NodeAuthRefused, match=bitcoin_node.rpc_url):
        await refused.call("getblockcount")
    await refused.close()

    url = f"http://127.0.0.1:{_closed_port()}"
    unreachable = RpcClient(url, "u", "p", retry_for=0.5)
    with pytest.raises(NodeUnavailable, match=url):
        await unreachable.call("getblockcount")
    await unreachable.close()

    client = RpcClient(bitcoin_node.rpc_url, bitcoin_node.rpc_user, bitcoin_node.rpc_password)
    with pytest.raises(RpcError) as unknown:
        await client.call("nosuchmethod")
    assert unknown.value.code == -32601
    assert await client.call("getblockcount") == await bitcoin_node.rpc("getblockcount")
    await client.close()


async def test_a_lock_made_while_the_daemon_was_down_is_found_after_a_restart(
    desks: Desks, bitcoin_node: Any
) -> None:
    alice, bob = desks
    _, h = new_secret()
    terms = terms_between(alice, bob, h, AMOUNT, 60)
    bob.a.watch(terms)  # in memory only: the daemon dies before its scanner saved the watch
    await bob.stop()
    lock_tx = await alice.a.build_lock(terms)
    await alice.persist_and_broadcast(lock_tx)
    await bitcoin_node.mine(1)

    await bob.start(watch=[terms])  # the daemon's order: the engine watches, then the scanner catches up

    seen = await bob.expect(Locked, h)
    assert (seen.txid, seen.amount) == (lock_tx.txid, AMOUNT)
