"""Attack: a node that fails right after leg 2's lock is signed leaves a nonce gap (issue 11).

The participant's lock of leg 2 (an ERC-20 on EVM) is checked again after it is signed: leg 2's live check
reads leg 1's chain. If leg 1's node fails just then, the check raises. The signed lock (an approve and
the lock, holding the account's next nonces) used to be thrown away unjournaled, while the adapter's
nonce counter had moved past them: every later transaction of the account, this swap's lock retried on
the next tick, and every other swap's claims and refunds, waited behind the gap for good (until a
restart), never mined. A signed transaction holding a nonce is now journaled before anything can fail.
"""

from __future__ import annotations

import asyncio
from typing import Any

from web3 import AsyncWeb3

from settlerd.adapters import HtlcTerms, SignedTx
from settlerd.swap import Status
from tests.fixtures.node_gate import NodeGate
from tests.integration.engine.conftest import (
    MakeDesk,
    clock,
    fresh_keys,
    gate,
    htlc_address,
    make_desk,
    miner,
    token,
    w3,
)
from tests.integration.engine.test_settle import trade, wait_status

__all__ = ["clock", "fresh_keys", "gate", "htlc_address", "make_desk", "miner", "token", "w3"]

# Leg 1's node stays down this long after the lock is signed: the live check's calls fail (web3 retries a
# refused connection for about 2 s), and a few of the next ticks' attempts with them.
OUTAGE_S = 4.0


async def test_a_live_check_failing_after_the_lock_is_signed_leaves_no_nonce_gap(
    make_desk: MakeDesk, miner: None, token: Any, w3: AsyncWeb3, gate: NodeGate
) -> None:
    a = await make_desk("desk-a")
    b = await make_desk("desk-b", rpc_urls={"eth": gate.url})
    adapter = b.adapters["usd"]
    sign = adapter.build_lock
    signed: list[SignedTx] = []
    lost = asyncio.Event()

    async def sign_then_lose_leg1_node(terms: HtlcTerms) -> SignedTx:
        tx = await sign(terms)
        if not signed:
            await gate.down()  # leg 1's node dies between the signing and the second check
            lost.set()
        signed.append(tx)
        return tx

    adapter.build_lock = sign_then_lose_leg1_node  # type: ignore[method-assign]
    swap_id = await trade(a, b, token)
    await asyncio.wait_for(lost.wait(), OUTAGE_S * 10)
    await asyncio.sleep(OUTAGE_S)
    await gate.open()

    # The lock goes out at the nonce it was signed with: leg 2 is mined and the swap settles.
    assert await wait_status(a, swap_id, Status.COMPLETED) == Status.COMPLETED
    assert await wait_status(b, swap_id, Status.COMPLETED) == Status.COMPLETED
    assert len(signed) == 1, "the lock was signed again at later nonces, behind a gap"
    pending = await w3.eth.get_transaction_count(b.address("usd"), "pending")
    mined = await w3.eth.get_transaction_count(b.address("usd"), "latest")
    assert pending == mined, "transactions of the participant's account wait behind a nonce gap"
