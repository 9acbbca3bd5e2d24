"""A claim or refund that finds the EVM HTLC already spent learns the outcome instead of retrying forever.

The initiator claims leg 2 while the participant's scanner on that chain is blind (a node lagging behind,
a provider starving its log queries). At leg 2's deadline the participant's refund reverts with
SwapNotActive. Before, the engine retried that refund every tick until leg 1's deadline passed too: the
participant never learnt the secret and lost leg 1. Now the adapter reads the Claimed log, hands on the
preimage and the engine claims leg 1. Likewise a refund someone else sent: the engine sees it refunded.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from settlerd_evm import contract as c
from settlerd_evm.scanner import Scanner
from web3 import AsyncWeb3

from settlerd.engine import LegRequest, OfferRequest, records
from settlerd.store import TxStatus
from settlerd.swap import Leg, Status
from tests.fixtures.anvil import Anvil
from tests.integration.engine.conftest import Clock, MakeDesk, clock, fresh_keys, make_desk, miner, stop
from tests.integration.engine.test_settle import trade, wait_status
from tests.integration.evm.conftest import htlc_address, send, token, w3

__all__ = ["clock", "fresh_keys", "htlc_address", "make_desk", "miner", "token", "w3"]

pytestmark = pytest.mark.anvil


async def test_participant_refund_of_a_claimed_leg2_claims_leg1(
    make_desk: MakeDesk,
    miner: None,
    token: Any,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    swap_id = await trade(a, b, token)
    # Any status before A's claim; the locks run in the chains' workers, so the swap moves fast.
    before_claim = (Status.LEG1_LOCKING, Status.LEG1_LOCKED, Status.LEG1_FINAL, Status.LEG2_LOCKED)
    await wait_status(a, swap_id, *before_claim)
    await stop(a)  # held back, so that leg 2 is claimed only once the participant is blind
    await wait_status(b, swap_id, Status.LEG2_FINAL)

    async def blind() -> None:
        return None

    monkeypatch.setattr(b.adapters["usd"].scanner, "poll", blind)
    a = await make_desk("desk-a", like=a)
    await wait_status(a, swap_id, Status.LEG2_CLAIMED, Status.LEG1_CLAIMING, Status.COMPLETED)
    assert (await b.store.get_swap(swap_id)).status == Status.LEG2_FINAL  # type: ignore[union-attr]

    caplog.set_level(logging.INFO, logger="settlerd.engine.executor")
    clock.advance(timedelta(minutes=31))  # past leg 2's deadline: the participant tries to refund

    assert await wait_status(b, swap_id, Status.COMPLETED) == Status.COMPLETED
    legs = {leg.leg: leg for leg in await b.store.legs_of(swap_id)}
    assert legs[1].claim_txid and legs[2].refund_txid is None
    journal = await b.store.signed_txs(swap_id=swap_id)
    assert not [t for t in journal if t.purpose == "refund"], "no refund was signed for a claimed HTLC"
    assert any(t.purpose == "claim" and t.status == TxStatus.CONFIRMED for t in journal)
    assert "already claimed" in caplog.text
    assert "failed, retrying" not in caplog.text


async def test_a_refund_someone_else_sent_ends_the_swap_refunded(
    anvil: Anvil,
    make_desk: MakeDesk,
    miner: None,
    token: Any,
    w3: AsyncWeb3,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Anyone may send a refund (it pays the sender): the initiator's own refund then finds it spent."""
    a, b = await make_desk("desk-a"), await make_desk("desk-b")
    offer = await a.capture.create_offer(
        OfferRequest(b.name, LegRequest("eth", "ETH", 10**17), LegRequest("usd", token.address, 5_000))
    )
    acceptance = await b.capture.accept_offer(offer)
    await stop(b)  # the participant never locks leg 2
    swap_id = str(offer["swap_id"])
    await a.capture.register_acceptance(swap_id, acceptance)
    await wait_status(a, swap_id, Status.LEG1_FINAL)
    terms = records.htlc_terms(a.engine.live(swap_id).state, Leg.ONE)
    await stop(a)

    # While the initiator is down, a stranger refunds leg 1 for it once the timelock has passed; the
    # initiator comes back with its scanner on that chain blind.
    clock.advance(timedelta(minutes=61))
    data = c.refund(c.ZERO_ADDRESS, terms.sender, terms.timelock, terms.hashlock)
    htlc = a.adapters["eth"].contract
    assert (await send(w3, anvil.keys[3], {"to": htlc, "data": data}))["status"] == 1
    scan = Scanner.poll

    async def blind_on_eth(self: Scanner) -> None:
        if self.chain != "eth":
            await scan(self)

    monkeypatch.setattr(Scanner, "poll", blind_on_eth)
    a = await make_desk("desk-a", like=a)

    assert await wait_status(a, swap_id, Status.REFUNDED) == Status.REFUNDED
    journal = await a.store.signed_txs(swap_id=swap_id)
    assert [t.purpose for t in journal] == ["lock"], "no refund was signed for a refunded HTLC"
