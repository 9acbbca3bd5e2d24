"""Attacks on the Bitcoin adapter's journal handling: a reveal its rebroadcaster sent on its own, and coins
a lock that never existed kept out of every later lock.

1. The initiator journals its claim of leg 2 and its node goes away before the claim reaches it. The
   adapter's rebroadcaster used to send every unconfirmed journal entry on the next block, the claim
   included, with no look at whether the secret may still be revealed (leg 2's refund may open by then):
   the participant could refund leg 2 and claim leg 1 with the secret. A claim the engine never sent is
   now the engine's to send first, after that check.
2. A lock signed but never journaled (the store failed right after the coins were picked) kept its coins
   reserved until a restart: every later lock of the desk saw a smaller balance, and a desk whose balance
   it was could not lock at all.
"""

from __future__ import annotations

from typing import Any

import pytest

from settlerd.adapters import Locked
from tests.integration.bitcoin.conftest import desks
from tests.integration.bitcoin.desks import Desk, new_secret, terms_between

__all__ = ["desks"]

pytestmark = pytest.mark.bitcoind

AMOUNT = 1_000_000  # sat
Desks = tuple[Desk, Desk]


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
    assert await bob.store.unsent_claims("bitcoin") == {claim.txid}


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
