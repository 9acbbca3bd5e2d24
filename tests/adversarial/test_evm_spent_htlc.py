"""A claim or refund that finds the EVM HTLC already spent learns the outcome instead of retrying forever.

The initiator claims leg 2 while the participant's scanner on that chain is blind (a node lagging behind,
a provider starving its log queries). At leg 2's deadline the participant's refund reverts with
SwapNotActive. Before, the engine retried that refund every tick until leg 1's deadline passed too: the
participant never learnt the secret and lost leg 1. Now the adapter reads the Claimed log, hands on the
preimage and the engine claims leg 1.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from settlerd.store import TxStatus
from settlerd.swap import Status
from tests.integration.engine.conftest import Clock, MakeDesk, clock, fresh_keys, make_desk, miner, stop
from tests.integration.engine.test_settle import trade, wait_status
from tests.integration.evm.conftest import htlc_address, token, w3

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
    await wait_status(a, swap_id, Status.LEG1_LOCKED, Status.LEG1_FINAL)
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
