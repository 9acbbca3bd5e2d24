"""Attack: a secret revealed from the journal after it was safe to, and a refused leg-2 lock sent anyway.

1. The initiator signs and journals its claim of leg 2 (the reveal of ``s``) and its node goes away
   before the claim reaches it. The outage lasts until leg 2's refund is about to open. The claim used to
   go out from the journal once the node was back, by the engine's retry or the adapter's rebroadcaster,
   neither of which asked again whether the secret may still be revealed: the participant, seeing ``s``,
   could refund leg 2 first and claim leg 1 with ``s``. The journaled claim is now checked again before its
   first broadcast, never sent by a rebroadcaster before that, and on EVM (where it holds a nonce) a
   0-value transfer to our own address takes its nonce, so ``s`` never appears.
2. The participant signs its leg-2 lock (an ERC-20: an approve and the lock, holding two nonces); the
   chain then runs ahead of the bounds stored at capture and the check after signing refuses it (S2). The
   lock used to be broadcast all the same, so as to leave no nonce gap. A no-op now takes its nonce.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from settlerd_evm.adapter import EvmAdapter
from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound

from settlerd.adapters import HtlcTerms, Purpose, SignedTx
from settlerd.store import TxStatus
from settlerd.swap import Status
from tests.fixtures.anvil import Anvil
from tests.fixtures.timeouts import TIMEOUT_FACTOR
from tests.integration.engine.conftest import (
    Clock,
    MakeDesk,
    clock,
    fresh_keys,
    htlc_address,
    make_desk,
    miner,
    token,
    w3,
)
from tests.integration.engine.test_settle import trade, wait_status
from tests.integration.evm.conftest import HOUR, terms_for
from tests.integration.evm.test_keeper import JournalSpy, adapters, journal, own_anvil, own_htlc
from tests.integration.evm.test_keeper import journal_and_broadcast as keeper_journal_and_broadcast
from tests.integration.evm.test_keeper import mine as keeper_mine

__all__ = [
    "adapters", "clock", "fresh_keys", "htlc_address", "journal", "make_desk", "miner", "own_anvil",
    "own_htlc", "token", "w3",
]  # fmt: skip

# Leg 2 lasts 30 minutes and the initiator needs 2 of them left to reveal: 29 minutes of outage leaves less.
OUTAGE = timedelta(minutes=29)
# Leg 2's lock is checked again with leg 1's refund this much nearer by the chain's clock: the 15 minutes
# of slack between leg 2's latest refund plus the claim margin and leg 1's earliest refund are gone.
CHAIN_RUNS_AHEAD = timedelta(minutes=20)
WAIT_S = 60.0 * TIMEOUT_FACTOR
POLL_S = 0.2


async def _sent(sent: list[SignedTx], purpose: Purpose) -> list[SignedTx]:
    """What was handed to the node, once something of ``purpose`` was, or a claim after the first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while loop.time() < deadline:
        if any(tx.purpose in (purpose, Purpose.CLAIM) for tx in sent[1:]):
            break
        await asyncio.sleep(POLL_S)
    return sent


async def _mined(w3: AsyncWeb3, txid: str) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while loop.time() < deadline:
        try:
            if (await w3.eth.get_transaction(txid))["blockNumber"] is not None:  # type: ignore[arg-type]
                return True
        except TransactionNotFound:
            pass
        await asyncio.sleep(POLL_S)
    return False


async def _unknown(w3: AsyncWeb3, txid: str) -> bool:
    try:
        await w3.eth.get_transaction(txid)  # type: ignore[arg-type]
    except TransactionNotFound:
        return True
    return False


async def test_a_claim_journaled_before_an_outage_is_not_revealed_after_it(
    make_desk: MakeDesk, miner: None, token: Any, w3: AsyncWeb3, clock: Clock
) -> None:
    a = await make_desk("desk-a")
    b = await make_desk("desk-b")
    adapter = a.adapters["usd"]  # leg 2, which the initiator claims
    send = adapter.broadcast
    sent: list[SignedTx] = []

    async def node_away_until_too_late(tx: SignedTx) -> str:
        if tx.purpose is Purpose.CLAIM and not sent:
            sent.append(tx)  # signed and journaled; the node goes away before it gets the claim
            clock.advance(OUTAGE)
            raise ConnectionError("usd: node unreachable")
        sent.append(tx)
        return await send(tx)

    adapter.broadcast = node_away_until_too_late  # type: ignore[method-assign]
    swap_id = await trade(a, b, token)
    [claim, *after] = await _sent(sent, Purpose.CANCEL)

    assert claim.purpose is Purpose.CLAIM
    assert [tx.purpose for tx in after if tx.purpose is Purpose.CLAIM] == [], "the late claim went out"
    [cancel] = [tx for tx in after if tx.purpose is Purpose.CANCEL]
    assert cancel.nonce == claim.nonce and cancel.meta["to"] == a.address("usd")
    assert int(cancel.meta["value"]) == 0 and cancel.meta["data"] == "0x"
    assert await _mined(w3, cancel.txid), "the no-op holding the claim's nonce was not mined"
    assert await _unknown(w3, claim.txid), "the claim reached the node"
    assert await b.store.get_secret(swap_id) is None, "the participant learned the secret"
    journal = {t.txid: t for t in await a.store.signed_txs(swap_id=swap_id)}
    assert journal[claim.txid].status == TxStatus.DROPPED
    assert journal[cancel.txid].replaces == claim.txid
    pending = await w3.eth.get_transaction_count(a.address("usd"), "pending")
    assert pending == await w3.eth.get_transaction_count(a.address("usd"), "latest"), "a nonce gap"


async def test_a_leg2_lock_refused_after_signing_never_reaches_the_chain(
    make_desk: MakeDesk, miner: None, token: Any, w3: AsyncWeb3, anvil: Anvil
) -> None:
    a = await make_desk("desk-a")
    b = await make_desk("desk-b")
    adapter = b.adapters["usd"]  # leg 2, which the participant locks
    sign, send = adapter.build_lock, adapter.broadcast
    signed: list[SignedTx] = []
    sent: list[SignedTx] = []

    async def sign_then_run_ahead(terms: HtlcTerms) -> SignedTx:
        tx = await sign(terms)
        if not signed:
            # The chain's clock runs ahead of ours while the lock is signed (the engines' clocks stay).
            anvil.rpc("evm_increaseTime", int(CHAIN_RUNS_AHEAD.total_seconds()))
            anvil.rpc("evm_mine")
        signed.append(tx)
        return tx

    async def record(tx: SignedTx) -> str:
        sent.append(tx)
        return await send(tx)

    adapter.build_lock = sign_then_run_ahead  # type: ignore[method-assign]
    adapter.broadcast = record  # type: ignore[method-assign]
    swap_id = await trade(a, b, token)
    assert await wait_status(b, swap_id, Status.CANCELLED, Status.LEG2_LOCKING) == Status.CANCELLED

    [lock] = signed
    [cancel] = [tx for tx in sent if tx.purpose is Purpose.CANCEL]
    assert [tx for tx in sent if tx.purpose is Purpose.LOCK] == [], "the refused lock was broadcast"
    assert cancel.nonce == lock.nonce
    assert await _mined(w3, cancel.txid), "the no-op holding the lock's nonce was not mined"
    assert await _unknown(w3, lock.txid), "the refused lock reached the node"
    events = await b.store.events(swap_id=swap_id, limit=None)
    assert "lock_refused" in {e.kind for e in events} and "lock_broadcast" not in {e.kind for e in events}
    pending = await w3.eth.get_transaction_count(b.address("usd"), "pending")
    assert pending == await w3.eth.get_transaction_count(b.address("usd"), "latest"), "a nonce gap"


async def test_a_claim_never_sent_past_its_timelock_gives_its_nonce_to_a_no_op(
    own_anvil: Anvil, adapters: Callable[..., Awaitable[EvmAdapter]], journal: JournalSpy
) -> None:
    """The engine no longer asks for a withheld claim (its leg was refunded meanwhile, say): its nonce must
    not stay a gap, nor may the claim go out (it would revert, with the secret in its calldata)."""
    alice = await adapters(own_anvil.keys[0], journal)
    bob = await adapters(own_anvil.keys[1], journal)
    preimage, terms = await terms_for(alice.w3, "ETH", 10**15, alice.address, bob.address)
    lock = await alice.build_lock(terms)
    await keeper_journal_and_broadcast(journal, alice, lock, 1)
    await alice.w3.eth.wait_for_transaction_receipt(lock.txid)

    claim = await bob.build_claim(terms, str(lock.htlc_id), preimage)
    async with journal.store.write() as w:
        await w.record_signed_tx(claim, "s1", 2)  # journaled; the node went away before the broadcast
    await keeper_mine(own_anvil, bob)
    assert not journal.replacements and await _unknown(bob.w3, claim.txid), "sent before its timelock"

    own_anvil.rpc("evm_increaseTime", HOUR + 1)
    await keeper_mine(own_anvil, bob)
    ((cancel, replaced, known_when_journaled),) = journal.replacements
    assert replaced == claim.txid and not known_when_journaled  # journaled before it was broadcast (S4)
    assert cancel.purpose is Purpose.CANCEL and cancel.nonce == claim.nonce
    assert await _mined(bob.w3, cancel.txid), "the no-op holding the claim's nonce was not mined"
    assert await _unknown(bob.w3, claim.txid), "the claim reached the node"
