"""The EVM adapter against anvil: lock, claim and refund through the HTLC contract, seen by the scanner."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from eth_account import Account
from settlerd_evm.adapter import AdapterConfigError, HtlcReverted

from settlerd.adapters import Claimed, HtlcFact, HtlcSpent, Locked, Refunded, Reorged
from settlerd.store.store import Store
from tests.fixtures.anvil import Anvil

from .conftest import HOUR, MakeAdapter, drain, journal_and_broadcast, pass_time, terms_for

pytestmark = pytest.mark.anvil
ETH_AMOUNT = 10**17


def addr(key: str) -> str:
    return str(Account.from_key(key).address)


async def test_eth_lock_claim_reveals_the_preimage(
    anvil: Anvil, make_adapter: MakeAdapter, store: Store
) -> None:
    alice = await make_adapter(anvil.keys[0], store)
    bob = await make_adapter(anvil.keys[1], store)
    preimage, terms = await terms_for(alice.w3, "ETH", ETH_AMOUNT, alice.address, bob.address)
    alice.watch(terms)
    bob.watch(terms)

    lock = await alice.build_lock(terms)
    assert (await journal_and_broadcast(store, alice, lock))["status"] == 1
    await bob.scanner.poll()
    (locked,) = drain(bob)
    assert isinstance(locked, Locked) and locked.amount == ETH_AMOUNT and locked.confirmations == 1
    assert locked.htlc_id is not None

    before = await bob.w3.eth.get_balance(bob.address)
    claim = await bob.build_claim(terms, locked.htlc_id, preimage)
    receipt = await journal_and_broadcast(store, bob, claim)
    fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert await bob.w3.eth.get_balance(bob.address) == before + ETH_AMOUNT - fee

    await alice.scanner.poll()
    kinds = {type(e): e for e in drain(alice)}
    assert kinds[Claimed].preimage == preimage
    assert kinds[Claimed].htlc_id == locked.htlc_id

    # Claimed already: not a revert to retry, but the spend, found and handed on as the scanner would.
    drain(bob)
    with pytest.raises(HtlcSpent, match="already claimed"):
        await bob.build_claim(terms, locked.htlc_id, preimage)
    (spent,) = drain(bob)
    assert isinstance(spent, Claimed) and spent.preimage == preimage
    assert spent.htlc_id == locked.htlc_id and spent.txid == claim.txid
    assert spent.height == receipt["blockNumber"] and spent.confirmations >= 1


async def test_erc20_lock_with_approve_then_refund(
    anvil: Anvil, make_adapter: MakeAdapter, store: Store, token: Any
) -> None:
    carol = await make_adapter(anvil.keys[2], store)
    amount = 5_000 * 10**6
    _, terms = await terms_for(carol.w3, token.address, amount, carol.address, addr(anvil.keys[1]))
    carol.watch(terms)
    lock = await carol.build_lock(terms)
    assert [b["purpose"] for b in lock.meta["before"]] == ["approve"]
    assert (await journal_and_broadcast(store, carol, lock))["status"] == 1
    await carol.scanner.poll()
    (locked,) = drain(carol)
    assert isinstance(locked, Locked)
    assert locked.htlc_id is not None

    with pytest.raises(HtlcReverted) as early:
        await carol.build_refund(terms, locked.htlc_id)
    assert early.value.error == "RefundNotYetAllowed"

    await pass_time(anvil, HOUR + 1)
    before = await token.functions.balanceOf(carol.address).call()
    refund = await carol.build_refund(terms, locked.htlc_id)
    assert (await journal_and_broadcast(store, carol, refund))["status"] == 1
    assert await token.functions.balanceOf(carol.address).call() == before + amount
    await carol.scanner.poll()
    assert Refunded in [type(e) for e in drain(carol)]

    # A second refund (a restart that lost the first one's broadcast record): Refunded again, no revert.
    with pytest.raises(HtlcSpent, match="already refunded"):
        await carol.build_refund(terms, locked.htlc_id)
    (again,) = drain(carol)
    assert isinstance(again, Refunded) and again.txid == refund.txid
    assert again.htlc_id == locked.htlc_id and again.hashlock == terms.hashlock


async def test_erc20_claim_and_the_named_reverts(
    anvil: Anvil, make_adapter: MakeAdapter, store: Store, token: Any
) -> None:
    alice = await make_adapter(anvil.keys[0], store)
    bob = await make_adapter(anvil.keys[1], store)
    preimage, terms = await terms_for(alice.w3, token.address, 7 * 10**6, alice.address, bob.address)
    bob.watch(terms)
    await journal_and_broadcast(store, alice, await alice.build_lock(terms))
    await bob.scanner.poll()
    (locked,) = drain(bob)
    assert locked.htlc_id is not None

    with pytest.raises(HtlcReverted) as wrong:
        await bob.build_claim(terms, locked.htlc_id, b"\x01" * 32)
    assert wrong.value.error == "SwapNotActive"

    before = await token.functions.balanceOf(bob.address).call()
    await journal_and_broadcast(store, bob, await bob.build_claim(terms, locked.htlc_id, preimage))
    assert await token.functions.balanceOf(bob.address).call() == before + terms.amount

    # A second swap left to expire: the claim window is closed.
    preimage2, terms2 = await terms_for(alice.w3, "ETH", ETH_AMOUNT, alice.address, bob.address)
    await journal_and_broadcast(store, alice, await alice.build_lock(terms2))
    await pass_time(anvil, HOUR + 1)
    with pytest.raises(HtlcReverted) as late:
        await bob.build_claim(terms2, "", preimage2)
    assert late.value.error == "ClaimExpired"


async def test_adapter_refuses_an_address_with_other_code(
    anvil: Anvil, make_adapter: MakeAdapter, store: Store, token: Any
):
    with pytest.raises(AdapterConfigError, match="other code"):
        await make_adapter(anvil.keys[0], store, contract=token.address)


async def test_reorg_that_removes_a_lock_is_reported(
    anvil: Anvil, make_adapter: MakeAdapter, store: Store
) -> None:
    dave = await make_adapter(anvil.keys[3], store)
    _, terms = await terms_for(dave.w3, "ETH", ETH_AMOUNT, dave.address, addr(anvil.keys[1]))
    dave.watch(terms)
    await dave.scanner.poll()
    drain(dave)
    snapshot = anvil.rpc("evm_snapshot")
    await journal_and_broadcast(store, dave, await dave.build_lock(terms))
    await dave.scanner.poll()
    (locked,) = drain(dave)
    assert isinstance(locked, Locked)

    anvil.rpc("evm_revert", snapshot)
    for _ in range(3):  # a longer branch without the lock
        anvil.rpc("evm_mine")
    await dave.scanner.poll()
    (reorged,) = drain(dave)
    assert isinstance(reorged, Reorged) and reorged.undoes is HtlcFact.LOCKED
    assert reorged.htlc_id == locked.htlc_id and reorged.txid == locked.txid

    # The journaled lock is rebroadcast unchanged (S4) and shows up again on the new branch.
    (journaled,) = [t for t in await store.unconfirmed_txs("evm") if t.txid == locked.txid]
    await dave.broadcast(journaled)
    await dave.w3.eth.wait_for_transaction_receipt(journaled.txid)
    await dave.scanner.poll()
    assert [type(e) for e in drain(dave)] == [Locked]


async def test_restart_keeps_nonces_without_gaps(
    anvil: Anvil, make_adapter: MakeAdapter, store: Store
) -> None:
    key = anvil.keys[2]
    first = await make_adapter(key, store)
    _, t1 = await terms_for(first.w3, "ETH", ETH_AMOUNT, first.address, addr(anvil.keys[1]))
    journaled = await first.build_lock(t1)
    async with store.write() as w:
        await w.record_signed_tx(journaled)
    _, t2 = await terms_for(first.w3, "ETH", ETH_AMOUNT, first.address, addr(anvil.keys[1]))
    lost = await first.build_lock(t2)  # signed, never journaled, so never broadcast: its nonce is free again
    assert lost.nonce == journaled.nonce + 1
    await first.close()

    second = await make_adapter(key, store)
    again = await second.build_lock(t2)
    assert again.nonce == lost.nonce
    await second.broadcast(journaled)  # the engine rebroadcasts what it journaled
    receipt = await journal_and_broadcast(store, second, again)
    assert receipt["status"] == 1
    assert await second.w3.eth.get_transaction_count(second.address) == again.nonce + 1


async def test_stuck_transaction_is_replaced_at_the_same_nonce(
    anvil: Anvil, make_adapter: MakeAdapter, store: Store
) -> None:
    erin = await make_adapter(anvil.keys[3], store, priority_fee_gwei=0.001)
    _, terms = await terms_for(erin.w3, "ETH", ETH_AMOUNT, erin.address, addr(anvil.keys[1]))
    anvil.rpc("evm_setAutomine", False)
    try:
        stuck = await erin.build_lock(terms)
        await erin.broadcast(stuck)
        bumped = await erin.build_bump(stuck)
        assert bumped.nonce == stuck.nonce and bumped.txid != stuck.txid
        assert bumped.meta["max_priority_fee_per_gas"] > stuck.meta["max_priority_fee_per_gas"]
        await erin.broadcast(bumped)
        anvil.rpc("evm_mine")
    finally:
        anvil.rpc("evm_setAutomine", True)
    receipt = await erin.w3.eth.wait_for_transaction_receipt(bumped.txid)
    assert receipt["status"] == 1
    assert await erin.w3.eth.get_transaction_count(erin.address) == stuck.nonce + 1
    assert dataclasses.replace(stuck, meta={}) != dataclasses.replace(bumped, meta={})


async def test_a_lock_with_a_later_timelock_is_not_the_agreed_leg(
    anvil: Anvil, make_adapter: MakeAdapter, store: Store
) -> None:
    # The timelock is part of the contract's swap id: a claim built from the agreed terms could never
    # spend a lock with another one, so such a lock must not count as the leg (a participant relying
    # on it would lock leg 2 and then be unable to claim leg 1).
    frank = await make_adapter(anvil.keys[3], store)
    _, agreed = await terms_for(frank.w3, "ETH", ETH_AMOUNT, frank.address, addr(anvil.keys[1]))
    frank.watch(agreed)
    await frank.scanner.poll()
    drain(frank)
    later = dataclasses.replace(agreed, timelock=agreed.timelock + 1)
    await journal_and_broadcast(store, frank, await frank.build_lock(later))
    await frank.scanner.poll()
    assert drain(frank) == []

    await journal_and_broadcast(store, frank, await frank.build_lock(agreed))
    await frank.scanner.poll()
    (locked,) = drain(frank)
    assert isinstance(locked, Locked) and locked.found == agreed
