"""Attack: the EVM keeper rebroadcasts a leg-2 lock the engine journaled and is about to refuse.

A lock holding a nonce is journaled before the engine's second timing check, so that its nonce is never a
gap. The keeper used to leave only unsent claims to the engine: on a new block between the journaling and
that check it broadcast the lock, which was mined before the engine's no-op could take its nonce. The swap
then recorded the refusal while our lock sat on chain with nothing watching it: leg 2's funds were never
refunded (or the initiator claimed them and we never claimed leg 1). The keeper now sends nothing the
engine has not sent; a never-sent lock whose swap ended gets the no-op at its nonce from the keeper. The
engine's own retry of a journaled, never-sent lock (its check failed on a node, or a restart) checks it
again before its first broadcast too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from eth_account import Account
from settlerd_evm.adapter import EvmAdapter
from web3 import AsyncWeb3

from settlerd.adapters import HtlcTerms, Purpose, SignedTx
from settlerd.swap import Leg, Status, SwapState
from tests.adversarial.test_late_reveal import CHAIN_RUNS_AHEAD, _mined, _unknown
from tests.fixtures.anvil import Anvil
from tests.integration.engine.conftest import (
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
from tests.integration.evm.conftest import terms_for
from tests.integration.evm.test_keeper import JournalSpy, adapters, journal, own_anvil, own_htlc
from tests.integration.evm.test_keeper import mine as keeper_mine

__all__ = [
    "adapters", "clock", "fresh_keys", "htlc_address", "journal", "make_desk", "miner", "own_anvil",
    "own_htlc", "token", "w3",
]  # fmt: skip


async def test_a_journaled_lock_is_not_rebroadcast_while_the_engine_refuses_it(
    make_desk: MakeDesk, miner: None, token: Any, w3: AsyncWeb3, anvil: Anvil
) -> None:
    a = await make_desk("desk-a")
    b = await make_desk("desk-b")
    adapter = b.adapters["usd"]  # leg 2, which the participant locks
    timing = b.engine.executor._timing
    sign, send, check = adapter.build_lock, adapter.broadcast, timing.refusal
    signed: list[SignedTx] = []
    sent: list[SignedTx] = []
    stepped: list[int] = []

    async def sign_then_run_ahead(terms: HtlcTerms) -> SignedTx:
        tx = await sign(terms)
        if not signed:
            # The chain's clock runs ahead of ours while the lock is signed: the second check refuses it.
            anvil.rpc("evm_increaseTime", int(CHAIN_RUNS_AHEAD.total_seconds()))
            anvil.rpc("evm_mine")
        signed.append(tx)
        return tx

    async def keeper_first(state: SwapState, leg: Leg) -> str | None:
        if signed and not stepped:
            # The lock is journaled; a new block reaches the keeper before the second check runs.
            anvil.rpc("evm_mine")
            tip = int(await adapter.w3.eth.block_number)
            stepped.append(tip)
            await adapter.keeper.step(tip)
        return await check(state, leg)

    async def record(tx: SignedTx) -> str:
        sent.append(tx)
        return await send(tx)

    adapter.build_lock = sign_then_run_ahead  # type: ignore[method-assign]
    adapter.broadcast = record  # type: ignore[method-assign]
    timing.refusal = keeper_first  # type: ignore[method-assign]
    swap_id = await trade(a, b, token)
    assert await wait_status(b, swap_id, Status.CANCELLED, Status.LEG2_LOCKING) == Status.CANCELLED

    assert stepped, "the keeper never ran between the lock's journaling and its second check"
    [lock] = signed
    assert [tx for tx in sent if tx.purpose is Purpose.LOCK] == [], "the refused lock was broadcast"
    [cancel] = [tx for tx in sent if tx.purpose is Purpose.CANCEL]
    assert cancel.nonce == lock.nonce
    assert await _mined(w3, cancel.txid), "the no-op holding the lock's nonce was not mined"
    assert await _unknown(w3, lock.txid), "the refused lock reached the node"
    pending = await w3.eth.get_transaction_count(b.address("usd"), "pending")
    assert pending == await w3.eth.get_transaction_count(b.address("usd"), "latest"), "a nonce gap"


async def test_a_lock_never_sent_of_an_ended_swap_gives_its_nonce_to_a_no_op(
    own_anvil: Anvil, adapters: Callable[..., Awaitable[EvmAdapter]], journal: JournalSpy
) -> None:
    """The engine no longer looks at a swap that ended: a lock it journaled and never sent must neither go
    out from the keeper nor leave its nonce a gap that blocks every later transaction of the account."""
    bob = await adapters(own_anvil.keys[1], journal)
    alice = Account.from_key(own_anvil.keys[0]).address
    _, terms = await terms_for(bob.w3, "ETH", 10**15, bob.address, alice)
    lock = await bob.build_lock(terms)
    async with journal.store.write() as w:
        await w.record_signed_tx(lock, "s1", 2)  # journaled; the node went away before the broadcast
    await keeper_mine(own_anvil, bob)
    assert not journal.replacements and await _unknown(bob.w3, lock.txid), "the keeper sent the lock"

    async with journal.store.write() as w:
        await w.update_swap("s1", status=Status.CANCELLED.value)
    await keeper_mine(own_anvil, bob)
    ((cancel, replaced, known_when_journaled),) = journal.replacements
    assert replaced == lock.txid and not known_when_journaled  # journaled before it was broadcast (S4)
    assert cancel.purpose is Purpose.CANCEL and cancel.nonce == lock.nonce
    assert await _mined(bob.w3, cancel.txid), "the no-op holding the lock's nonce was not mined"
    assert await _unknown(bob.w3, lock.txid), "the lock reached the node"


async def test_a_journaled_lock_whose_check_failed_is_checked_again_before_it_goes(
    make_desk: MakeDesk, miner: None, token: Any, w3: AsyncWeb3, anvil: Anvil
) -> None:
    """The check after signing reads nodes and can fail (or a crash cuts it short) once the lock holding
    a nonce is journaled: the retry, which finds the lock in the journal, used to broadcast it unchecked."""
    a = await make_desk("desk-a")
    b = await make_desk("desk-b")
    adapter = b.adapters["usd"]  # leg 2, which the participant locks
    timing = b.engine.executor._timing
    sign, send, check = adapter.build_lock, adapter.broadcast, timing.refusal
    signed: list[SignedTx] = []
    sent: list[SignedTx] = []
    failed: list[bool] = []

    async def sign_once(terms: HtlcTerms) -> SignedTx:
        tx = await sign(terms)
        signed.append(tx)
        return tx

    async def fail_then_run_ahead(state: SwapState, leg: Leg) -> str | None:
        if signed and not failed:
            # The lock is journaled; its check fails on a node, and the chain runs ahead before the retry.
            failed.append(True)
            anvil.rpc("evm_increaseTime", int(CHAIN_RUNS_AHEAD.total_seconds()))
            anvil.rpc("evm_mine")
            raise ConnectionError("usd: node unreachable")
        return await check(state, leg)

    async def record(tx: SignedTx) -> str:
        sent.append(tx)
        return await send(tx)

    adapter.build_lock = sign_once  # type: ignore[method-assign]
    adapter.broadcast = record  # type: ignore[method-assign]
    timing.refusal = fail_then_run_ahead  # type: ignore[method-assign]
    swap_id = await trade(a, b, token)
    assert await wait_status(b, swap_id, Status.CANCELLED, Status.LEG2_LOCKING) == Status.CANCELLED

    assert failed, "the check after signing never ran"
    [lock] = signed
    assert [tx for tx in sent if tx.purpose is Purpose.LOCK] == [], "the refused lock was broadcast"
    [cancel] = [tx for tx in sent if tx.purpose is Purpose.CANCEL]
    assert cancel.nonce == lock.nonce
    assert await _mined(w3, cancel.txid), "the no-op holding the lock's nonce was not mined"
    assert await _unknown(w3, lock.txid), "the refused lock reached the node"
    events = await b.store.events(swap_id=swap_id, limit=None)
    assert "lock_refused" in {e.kind for e in events} and "lock_broadcast" not in {e.kind for e in events}
