"""Fee bumps of claims and refunds against a real regtest node: counted from the chain, bounded by dust, and
one spend's trouble never stops the others."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest
from settlerd_bitcoin import factory
from settlerd_bitcoin.fees import target_rate
from settlerd_bitcoin.records import sats

from settlerd.adapters import Claimed, HtlcTerms, Locked, Purpose, SignedTx
from settlerd.store import Store, TxStatus
from tests.integration.bitcoin.desks import Desk, new_secret, terms_between

pytestmark = pytest.mark.bitcoind

AMOUNT = 1_000_000  # sat
OUTAGE_BLOCKS = 100  # blocks mined while the desk was down: its scanner reads them one by one after a start
Desks = tuple[Desk, Desk]


async def locked_htlc(
    alice: Desk, bob: Desk, node: Any, blocks: int, amount: int = AMOUNT
) -> tuple[bytes, HtlcTerms, str]:
    """Alice locks ``amount`` for Bob, refundable after ``blocks``; returns the secret, terms and htlc id."""
    secret, h = new_secret()
    terms = terms_between(alice, bob, h, amount, blocks)
    alice.a.watch(terms)
    bob.a.watch(terms)
    await alice.persist_and_broadcast(await alice.a.build_lock(terms))
    await node.mine(1)
    locked = await bob.expect(Locked, h)
    assert locked.htlc_id is not None
    return secret, terms, locked.htlc_id


async def empty_block(node: Any) -> None:
    await node.rpc("generateblock", node.miner_address, [])


async def test_a_refund_signed_while_the_scanner_catches_up_is_not_bumped_to_the_cap(
    desks: Desks, bitcoin_node: Any
) -> None:
    alice, bob = desks
    _, terms, htlc_id = await locked_htlc(alice, bob, bitcoin_node, blocks=3)
    await bitcoin_node.mine(terms.timelock - await bitcoin_node.rpc("getblockcount"))
    await alice.synced()

    # A node outage: the desk is down while blocks come. After the start its scanner reads them one by one,
    # and the engine may sign the due refund before the scanner has caught up.
    await alice.stop()
    await bitcoin_node.mine(OUTAGE_BLOCKS)
    store = await Store.open(f"sqlite:///{alice.db}")
    catching_up = factory(alice.settings(), store)
    try:
        await catching_up.scanner.load()
        assert catching_up.tip <= await bitcoin_node.rpc("getblockcount") - OUTAGE_BLOCKS
        refund = await catching_up.build_refund(terms, htlc_id)
        async with store.write() as w:
            await w.record_signed_tx(refund)
        assert await catching_up.broadcast(refund) == refund.txid
        async with store.write() as w:
            await w.mark_tx(refund.txid, TxStatus.BROADCAST, chain=refund.chain)  # as the engine does

        await catching_up.scanner.sync()  # caught up: the tip jumps by the outage's blocks
        await catching_up.maintain()
        assert catching_up.replacement_of(refund.txid) is None  # it could not have been in any of them

        await empty_block(bitcoin_node)  # one block it could have been in
        await catching_up.scanner.sync()
        await catching_up.maintain()
        replacement = catching_up.replacement_of(refund.txid)
        assert replacement is not None
        bumped = await bitcoin_node.rpc("getrawtransaction", replacement, True)
        one_step = target_rate(refund.meta["start_fee_rate"], catching_up.settings.fees.cap, 1, None)
        fee = AMOUNT - sats(bumped["vout"][0]["value"])
        assert fee <= math.ceil(one_step * (bumped["vsize"] + 1))  # sized with the longest signature
        assert fee < catching_up.settings.fees.cap * bumped["vsize"] / 5
    finally:
        await catching_up.rpc.close()
        await store.close()
        await alice.start()


async def test_a_bump_that_would_leave_dust_stops_below_it_and_alerts_once(
    desks: Desks, bitcoin_node: Any, caplog: pytest.LogCaptureFixture
) -> None:
    alice, bob = desks
    small = 2_500  # sat: at the cap (50 sat/vB) a claim's fee would be about three times this
    secret, terms, htlc_id = await locked_htlc(alice, bob, bitcoin_node, blocks=20, amount=small)
    claim = await bob.a.build_claim(terms, htlc_id, secret)
    await bob.persist_and_broadcast(claim)
    await alice.expect(Claimed, terms.hashlock, lambda e: e.txid == claim.txid)

    caplog.set_level(logging.INFO, logger="settlerd_bitcoin")
    for _ in range(3):  # the deadline nears: the schedule asks for more than the HTLC can pay
        await empty_block(bitcoin_node)
        await bob.synced()  # the adapter's loop went on: a failed pass would never report the tip
    alerts = [r for r in caplog.records if r.levelno == logging.ERROR and claim.txid in r.getMessage()]
    assert len(alerts) == 1 and "dust" in alerts[0].getMessage() and htlc_id in alerts[0].getMessage()

    latest = bob.a.replacement_of(claim.txid) or claim.txid
    in_mempool = await bitcoin_node.rpc("getrawtransaction", latest, True)
    assert sats(in_mempool["vout"][0]["value"]) >= 294  # P2WPKH dust: the output still relays

    await bitcoin_node.mine(1)
    mined = await alice.expect(Claimed, terms.hashlock, lambda e: e.confirmations == 1)
    assert mined.txid == latest


async def test_one_broken_spend_does_not_stop_the_others_bumps(
    desks: Desks, bitcoin_node: Any, caplog: pytest.LogCaptureFixture
) -> None:
    alice, bob = desks
    # A journalled "claim" that is no HTLC spend at all (a plain payment): its bump cannot be worked out.
    txid, _ = await bitcoin_node.fund(await bob.a.receive_address(), 50_000)
    raw = bytes.fromhex(await bitcoin_node.rpc("getrawtransaction", txid))
    broken = SignedTx(
        "bitcoin", txid, raw, Purpose.CLAIM, f"{txid}:0", meta={"amount": 50_000, "fee_rate": 2.0}
    )
    await bob.persist_and_broadcast(broken)

    secret, terms, htlc_id = await locked_htlc(alice, bob, bitcoin_node, blocks=20)
    claim = await bob.a.build_claim(terms, htlc_id, secret)
    await bob.persist_and_broadcast(claim)

    caplog.set_level(logging.INFO, logger="settlerd_bitcoin")
    await empty_block(bitcoin_node)
    await bob.synced()
    assert bob.a.replacement_of(claim.txid) is not None  # the healthy claim was still bumped
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and txid in errors[0] and "fee-bumped" in errors[0]

    await bitcoin_node.mine(1)
    await bob.synced()
    assert await bitcoin_node.rpc("getrawmempool") == []
