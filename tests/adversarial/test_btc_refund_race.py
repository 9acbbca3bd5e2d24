"""An initiator who holds the secret races the participant's refund of a Bitcoin leg 2.

A Bitcoin HTLC's claim path never closes: after leg 2's timelock (T2) the initiator can still claim it, and
the participant then has only until leg 1's timelock (T1) to claim leg 1 with the secret. Both legs are on
one regtest node here, between two Bitcoin adapters. The test plays each engine: the participant refunds
leg 2 as soon as T2 allows and claims leg 1 the moment the secret is public (S3); the initiator is hostile,
with no fee cap of its own and a miner that takes its transactions privately.

Blocks are mined as a fee market would: during a fee spike, a block takes only mempool transactions paying
MARKET_RATE or more, ten times what the desks' node estimates; in the last FLOOD_BLOCKS blocks before T1 the
initiator fills blocks above the participant's fee cap. Before, a refund kept its first rate for 36 blocks
and a claim with more than 36 blocks left paid the bare estimate: the initiator could wait for the flood, and
the participant lost both legs.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from settlerd_bitcoin.htlc import Htlc
from settlerd_bitcoin.keys import RECEIVE
from settlerd_bitcoin.records import Spend, sats
from settlerd_bitcoin.txbuild import REFUND_SELECTOR, OutPoint, htlc_spend

from settlerd.adapters import Claimed, HtlcFact, HtlcTerms
from tests.integration.bitcoin.desks import Desk, new_secret, terms_between

pytestmark = pytest.mark.bitcoind

AMOUNT = 1_000_000  # sat, each leg
LEG1_BLOCKS = 90  # T1, from the locks: leg 2 is at most about two thirds of leg 1
LEG2_BLOCKS = 50  # T2: the 40 blocks between are the participant's time to claim leg 1
MARKET_RATE = 20.0  # sat/vB a block demands in the spike; the desks estimate their 2 sat/vB floor
FLOOD_BLOCKS = 18  # the initiator fills the blocks from T1 - FLOOD_BLOCKS on ...
FLOOD_RATE = 60.0  # ... paying above the desks' 50 sat/vB fee cap
ATTACK_RATE = 120.0  # sat/vB the initiator pays for its own claim and refund


@pytest.fixture
async def desks(fresh_bitcoin_node: Any, tmp_path: Path) -> AsyncIterator[tuple[Desk, Desk]]:
    node = fresh_bitcoin_node
    birthday = await node.rpc("getblockcount") + 1
    alice = Desk("initiator", node, tmp_path / "initiator.sqlite3", os.urandom(32), birthday)
    bob = Desk("participant", node, tmp_path / "participant.sqlite3", os.urandom(32), birthday)
    await alice.start()
    await bob.start()
    try:
        await node.mine(2, await alice.a.receive_address())
        await node.mine(2, await bob.a.receive_address())
        await node.mine(100)
        await alice.synced()
        await bob.synced()
        yield alice, bob
    finally:
        await alice.stop()
        await bob.stop()


async def market_block(node: Any, t1: int) -> None:
    """The next block as the fee market (and, near T1, the initiator's flood) lets it be."""
    height = await node.rpc("getblockcount") + 1
    demand = FLOOD_RATE if height > t1 - FLOOD_BLOCKS else MARKET_RATE
    pool = await node.rpc("getrawmempool", True)
    paying = [txid for txid, e in pool.items() if sats(e["fees"]["base"]) / e["vsize"] >= demand]
    await node.rpc("generateblock", node.miner_address, paying)


def attacker_spend(desk: Desk, terms: HtlcTerms, htlc_id: str, selector: bytes, locktime: int) -> bytes:
    """A claim (``selector`` = the secret) or refund the initiator signs itself, at ATTACK_RATE."""
    htlc = Htlc(terms.hashlock, bytes.fromhex(terms.recipient), bytes.fromhex(terms.sender), terms.timelock)
    key = desk.a.keys.swap_key(terms.hashlock)
    to = desk.a.wallet.script(RECEIVE, 0)
    tx, _ = htlc_spend(htlc, OutPoint.parse(htlc_id), AMOUNT, key, to, ATTACK_RATE, selector, locktime)
    return tx.serialize()


def settled(desk: Desk, htlc_id: str) -> Spend | None:
    """The spend of an HTLC in a block, as the desk's scanner read it."""
    funding = desk.a.scanner.fundings.get(htlc_id)
    spend = funding.spend if funding is not None else None
    return spend if spend is not None and spend.height > 0 else None


async def lock_both_legs(alice: Desk, bob: Desk) -> tuple[bytes, HtlcTerms, HtlcTerms, str, str]:
    node = alice.node
    secret, h = new_secret()
    leg1 = terms_between(alice, bob, h, AMOUNT, LEG1_BLOCKS)
    leg2 = terms_between(bob, alice, h, AMOUNT, LEG2_BLOCKS)
    for desk in (alice, bob):
        desk.a.watch(leg1)
        desk.a.watch(leg2)
    lock1 = await alice.a.build_lock(leg1)
    await alice.persist_and_broadcast(lock1)
    await node.mine(1)
    lock2 = await bob.a.build_lock(leg2)
    await bob.persist_and_broadcast(lock2)
    await node.mine(leg2.timelock - await node.rpc("getblockcount"))  # the initiator withholds until T2
    await bob.synced()
    assert lock1.htlc_id is not None and lock2.htlc_id is not None
    return secret, leg1, leg2, lock1.htlc_id, lock2.htlc_id


async def participant_lost(bob: Desk, htlc1: str, htlc2: str) -> bool:
    """Leg 2 claimed by the initiator while leg 1 did not go to the participant."""
    leg1, leg2 = settled(bob, htlc1), settled(bob, htlc2)
    assert leg2 is not None, "leg 2 must be settled one way or the other by now"
    return leg2.fact is HtlcFact.CLAIMED and (leg1 is None or leg1.fact is not HtlcFact.CLAIMED)


async def test_a_withheld_claim_mined_privately_before_t1_does_not_take_both_legs(
    desks: tuple[Desk, Desk],
) -> None:
    alice, bob = desks
    node = alice.node
    secret, leg1, leg2, htlc1, htlc2 = await lock_both_legs(alice, bob)
    await bob.persist_and_broadcast(await bob.a.build_refund(leg2, htlc2))  # T2 passed: refund at once

    # The initiator waits for the last block before leg 1's refund opens.
    while await node.rpc("getblockcount") < leg1.timelock - 1:
        await market_block(node, leg1.timelock)
        await bob.synced()
    txid2, vout2 = htlc2.split(":")
    if await node.rpc("gettxout", txid2, int(vout2), False) is not None:
        claim2 = attacker_spend(alice, leg2, htlc2, secret, 0)
        await node.rpc("generateblock", node.miner_address, [claim2.hex()])  # never public before
        seen = await bob.expect(Claimed, leg2.hashlock, lambda e: e.htlc_id == htlc2)
        assert seen.preimage == secret
        await bob.persist_and_broadcast(await bob.a.build_claim(leg1, htlc1, secret))
        refund1 = attacker_spend(alice, leg1, htlc1, REFUND_SELECTOR, leg1.timelock)
        await node.rpc("sendrawtransaction", refund1.hex())  # outbids the claim as T1 opens
    for _ in range(3):
        await market_block(node, leg1.timelock)
        await bob.synced()

    assert not await participant_lost(bob, htlc1, htlc2)
    refunded = settled(bob, htlc2)
    assert refunded is not None and refunded.fact is HtlcFact.REFUNDED
    assert refunded.height <= leg2.timelock + 6  # confirmed within the climb, long before T1


async def test_a_claim_right_after_t2_with_a_high_fee_leaves_time_to_claim_leg1(
    desks: tuple[Desk, Desk],
) -> None:
    alice, bob = desks
    node = alice.node
    secret, leg1, leg2, htlc1, htlc2 = await lock_both_legs(alice, bob)
    await bob.persist_and_broadcast(await bob.a.build_refund(leg2, htlc2))

    # Right after T2 the initiator claims leg 2 over the participant's refund, at a rate it cannot match.
    await node.rpc("sendrawtransaction", attacker_spend(alice, leg2, htlc2, secret, 0).hex())
    seen = await bob.expect(Claimed, leg2.hashlock, lambda e: e.htlc_id == htlc2)
    assert seen.preimage == secret  # public: the participant claims leg 1 now
    claim1 = await bob.a.build_claim(leg1, htlc1, secret)
    await bob.persist_and_broadcast(claim1)

    while await node.rpc("getblockcount") < leg1.timelock:
        await market_block(node, leg1.timelock)
        await bob.synced()
    txid1, vout1 = htlc1.split(":")
    if await node.rpc("gettxout", txid1, int(vout1), False) is not None:
        refund1 = attacker_spend(alice, leg1, htlc1, REFUND_SELECTOR, leg1.timelock)
        await node.rpc("sendrawtransaction", refund1.hex())
    for _ in range(3):
        await market_block(node, leg1.timelock)
        await bob.synced()

    assert not await participant_lost(bob, htlc1, htlc2)
    claimed = settled(bob, htlc1)
    assert claimed is not None and claimed.fact is HtlcFact.CLAIMED
    assert claimed.height < leg1.timelock - FLOOD_BLOCKS  # well before T1, ahead of any late flood
