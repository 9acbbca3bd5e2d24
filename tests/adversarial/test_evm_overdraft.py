"""Attack: two locks that together overdraw the EVM account leave a nonce gap (issue 11).

A desk holding enough ETH for one lock accepts two trades at once (or a counterparty offers a second one
while the first lock waits for its block). The balance check before a lock read the balance of the latest
block: the first lock, sent but not mined yet, did not count, so the second lock passed it too. Signed at
the next nonce, it can never be mined (the node refuses it, or it fails for funds once the first is in): its
nonce is never used, and every later transaction of the account, claims and refunds of other swaps
included, waits behind it for good. The check now counts what our pending transactions already spend.
"""

from __future__ import annotations

import asyncio
from typing import Any

from eth_typing import HexStr
from web3 import AsyncWeb3

from settlerd.engine import LegRequest, OfferRequest
from settlerd.swap import Status
from tests.fixtures.anvil import Anvil
from tests.integration.engine.conftest import (
    Desk,
    MakeDesk,
    clock,
    fresh_keys,
    htlc_address,
    make_desk,
    token,
    w3,
)
from tests.integration.engine.test_settle import ETH_AMOUNT, TOKEN_AMOUNT, status_of, wait_status

__all__ = ["clock", "fresh_keys", "htlc_address", "make_desk", "token", "w3"]

# Enough for one lock and its gas, not for two.
BALANCE = ETH_AMOUNT * 3 // 2
# Ticks of the initiator's engine to give the second lock its chance to go out.
SECOND_LOCK_WAIT_S = 3.0


async def offer(a: Desk, b: Desk, token: Any) -> tuple[str, dict[str, Any]]:
    give, get = LegRequest("eth", "ETH", ETH_AMOUNT), LegRequest("usd", token.address, TOKEN_AMOUNT)
    document = await a.capture.create_offer(OfferRequest(b.name, give, get))
    return str(document["swap_id"]), await b.capture.accept_offer(document)


async def test_a_lock_the_account_cannot_pay_besides_a_pending_one_is_refused(
    make_desk: MakeDesk, token: Any, w3: AsyncWeb3, anvil: Anvil
) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    anvil.rpc("anvil_setBalance", a.address("eth"), hex(BALANCE))
    first, first_acceptance = await offer(a, b, token)
    second, second_acceptance = await offer(a, b, token)
    anvil.rpc("evm_setAutomine", False)  # the first lock waits for its block, as on a live chain
    try:
        await a.capture.register_acceptance(first, first_acceptance)
        assert await wait_status(a, first, Status.LEG1_LOCKING) == Status.LEG1_LOCKING
        await a.capture.register_acceptance(second, second_acceptance)
        await asyncio.sleep(SECOND_LOCK_WAIT_S)
    finally:
        anvil.rpc("evm_setAutomine", True)
        anvil.rpc("evm_mine")

    assert await status_of(a, second) == Status.CANCELLED, "the second lock was let through"
    events = await a.store.events(swap_id=second, limit=None)
    [refused] = [e for e in events if e.kind == "lock_refused"]
    assert "balance" in refused.payload["event"]["reason"]
    assert await a.store.signed_txs(swap_id=second) == []
    # Every nonce the account handed out was mined: none is left for later transactions to wait behind.
    for tx in await a.store.signed_txs(chain="eth"):
        receipt = await w3.eth.get_transaction_receipt(HexStr(tx.txid))
        assert receipt["status"] == 1, f"{tx.purpose} {tx.txid} at nonce {tx.nonce} failed"
