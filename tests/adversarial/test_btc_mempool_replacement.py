"""Attack: the initiator replaces the participant's leg 2 refund in the mempool with its claim (issue 11).

After T2 the participant's refund of a Bitcoin leg 2 goes to the mempool, and its scanner reports it. The
initiator, holding the secret, replaces it with a claim. The scanner used to stop looking at the mempool
once every watched HTLC had a spend, even one only in the mempool, and never looked at a second mempool
spend of the same HTLC: the participant learned the secret only when the claim was mined. An initiator that
keeps its claim unmined (pinned under a large low-fee descendant that no refund bump can outbid) until it
has refunded leg 1 takes both legs. The claim is now reported from the mempool, and leg 1 claimed at once.
"""

from __future__ import annotations

import pytest

from settlerd.adapters import Claimed, Refunded
from tests.adversarial.test_btc_refund_race import attacker_spend, desks, lock_both_legs
from tests.integration.bitcoin.desks import Desk

__all__ = ["desks"]

pytestmark = pytest.mark.bitcoind


async def test_a_claim_replacing_our_refund_in_the_mempool_reveals_the_secret_at_once(
    desks: tuple[Desk, Desk],
) -> None:
    alice, bob = desks
    node = alice.node
    secret, leg1, leg2, htlc1, htlc2 = await lock_both_legs(alice, bob)
    await bob.persist_and_broadcast(await bob.a.build_refund(leg2, htlc2))
    await bob.expect(Refunded, leg2.hashlock, lambda e: e.htlc_id == htlc2)  # seen in the mempool

    # The initiator replaces the refund with its claim; no block is mined.
    claim = attacker_spend(alice, leg2, htlc2, secret, 0)
    await node.rpc("sendrawtransaction", claim.hex())
    seen = await bob.expect(Claimed, leg2.hashlock, lambda e: e.htlc_id == htlc2)
    assert (seen.preimage, seen.confirmations) == (secret, 0)
    # Leg 1 is claimed with it while the initiator's claim still waits unmined.
    await bob.persist_and_broadcast(await bob.a.build_claim(leg1, htlc1, seen.preimage))
    await bob.expect(Claimed, leg1.hashlock, lambda e: e.htlc_id == htlc1)
