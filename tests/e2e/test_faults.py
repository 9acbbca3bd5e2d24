"""Two settlerd processes through faults: a counterparty that goes away, a late claim, a wrong lock, a reorg.

The deadline-waiting scenarios run in the background (fault_scenarios.py, started by the `fault_runs`
fixture); each test here awaits its own scenario and checks what both daemons and the chains show.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from localnet import Daemon, Localnet, btc, eth

from settlerd.swap import Status
from settlerd.swap.status import rank

from .fault_scenarios import BTC_AMOUNT, ETH_AMOUNT, LATE_RESTART_LEAD_S, Outcome
from .faults import (
    deadline_of,
    first_at,
    journal,
    leg,
    live_locks,
    locks_in,
    mine_evm,
    miners_paused,
    statuses,
    wait_reached,
)
from .settlement import MAX_BTC_FEES_SATS, MAX_EVM_FEES_WEI, assert_paid, assert_settled, balances

S = Status
Runs = dict[str, asyncio.Task[Outcome]]
REORG_WAIT_S = 30.0
POLL_S = 0.1


async def outcome_of(runs: Runs, name: str) -> Outcome:
    outcome = await runs[name]
    print(f"{name}: {outcome.seconds:.0f}s from capture to the end")
    return outcome


async def assert_audit_intact(net: Localnet, *names: str) -> None:
    for daemon in (d for d in net.daemons if d.name in names):
        code, output = await net.audit_verify(daemon)
        assert code == 0 and "intact" in output, (daemon.name, output)


def no_reveal(timeline: list[dict[str, Any]]) -> bool:
    return S.LEG2_CLAIMING not in statuses(timeline) and S.LEG2_CLAIMED not in statuses(timeline)


async def _wait(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + REORG_WAIT_S
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {REORG_WAIT_S:.0f}s: {what}")
        await asyncio.sleep(POLL_S)


async def test_a_reorg_removes_leg_2_before_it_is_final_and_nothing_is_revealed(
    net: Localnet, desks: tuple[Daemon, Daemon]
) -> None:
    a, b = desks
    a0, b0 = await balances(net, a), await balances(net, b)
    async with miners_paused(net):
        # Leg 1 on anvil (mined with its transaction), leg 2 on regtest, mined here block by block.
        swap_id = await net.trade(a, b, give=eth(ETH_AMOUNT), get=btc(BTC_AMOUNT))
        await wait_reached(net, a, swap_id, S.LEG1_LOCKED)

        async def leg2_broadcast() -> bool:
            await mine_evm(net)
            return bool(leg(await net.swap(b, swap_id), 2)["lock_txid"])

        await _wait(leg2_broadcast, "the participant locks leg 2 once leg 1 is final")
        lock_txid = leg(await net.swap(b, swap_id), 2)["lock_txid"]

        async def in_mempool() -> bool:
            return lock_txid in await net.btc.rpc("getrawmempool")

        await _wait(in_mempool, f"leg 2's lock {lock_txid} reaches the node")
        await net.mine_btc(1)
        assert await wait_reached(net, a, swap_id, S.LEG2_LOCKED) == S.LEG2_LOCKED
        # One confirmation of the two needed: the block goes away.
        await net.btc.rpc("invalidateblock", await net.btc.rpc("getbestblockhash"))

        async def reorg_recorded() -> bool:
            timeline = await net.timeline(a, swap_id)
            return any((e["payload"].get("change") or {}).get("reorg") for e in timeline)

        await _wait(reorg_recorded, "the initiator records that leg 2's lock left the chain")
        document = await net.swap(a, swap_id)
        assert rank(Status(document["status"])) < rank(S.LEG2_LOCKED), document
        assert leg(document, 2)["claim_txid"] is None and not [
            t for t in journal(a, swap_id) if t.purpose == "claim"
        ]
        assert no_reveal(await net.timeline(a, swap_id))

    # Blocks again: leg 2's lock confirms anew (back from the mempool or rebroadcast) and the swap carries on.
    for daemon in (a, b):
        await net.wait_status(daemon, swap_id, S.COMPLETED)
    timeline = await net.timeline(a, swap_id)
    reorg_at = max(i for i, e in enumerate(timeline) if (e["payload"].get("change") or {}).get("reorg"))
    after = statuses(timeline[reorg_at + 1 :])
    assert S.LEG2_FINAL in after and after.index(S.LEG2_FINAL) < after.index(S.LEG2_CLAIMING), after
    assert S.LEG2_CLAIMING not in statuses(timeline[: reorg_at + 1])
    for daemon, own_leg in ((a, 1), (b, 2)):
        assert [t.leg for t in live_locks(daemon, swap_id)] == [own_leg], journal(daemon, swap_id)
        code, output = await net.audit_verify(daemon)
        assert code == 0 and "intact" in output, output
    a1, b1 = await balances(net, a), await balances(net, b)
    assert_paid("a BTC", a0.btc, a1.btc, BTC_AMOUNT, MAX_BTC_FEES_SATS)
    assert_paid("b BTC", b0.btc, b1.btc, -BTC_AMOUNT, MAX_BTC_FEES_SATS)
    assert_paid("a ETH", a0.eth, a1.eth, -ETH_AMOUNT, MAX_EVM_FEES_WEI)
    assert_paid("b ETH", b0.eth, b1.eth, ETH_AMOUNT, MAX_EVM_FEES_WEI)


async def test_participant_never_locks_so_the_initiator_refunds(fault_runs: Runs, net: Localnet) -> None:
    outcome = await outcome_of(fault_runs, "participant_never_locks")
    hub = outcome.documents["hub"]
    assert hub["status"] == S.REFUNDED, hub
    one, two = leg(hub, 1), leg(hub, 2)
    assert one["chain"] == "bitcoin" and one["refund_txid"] and one["claim_txid"] is None, one
    assert two["lock_txid"] is None, two
    assert [(t.leg, t.purpose) for t in outcome.journals["hub"] if t.purpose != "refund"] == [(1, "lock")]
    assert no_reveal(outcome.timelines["hub"])
    # The refund was made only after leg 1's deadline.
    assert first_at(outcome.timelines["hub"], S.REFUNDING) >= deadline_of(hub, 1)
    await assert_audit_intact(net, "hub", "absent")


async def test_initiator_never_claims_so_both_refund(fault_runs: Runs, net: Localnet) -> None:
    outcome = await outcome_of(fault_runs, "initiator_never_claims")
    hub, sleeper = outcome.documents["hub"], outcome.documents["sleeper"]
    assert rank(outcome.notes["killed_at"]) < rank(S.LEG2_FINAL), outcome.notes
    assert hub["status"] == S.REFUNDED and sleeper["status"] == S.REFUNDED, (hub, sleeper)
    # The sleeper, restarted after the hub's refund, saw both legs locked and refunded; the hub's swap
    # ended with its own refund, before the sleeper's came, so it shows leg 1 locked and unclaimed.
    for number in (1, 2):
        details = leg(sleeper, number)
        assert details["lock_txid"] and details["refund_txid"] and details["claim_txid"] is None, details
        assert details["lock_txid"] == leg(hub, number)["lock_txid"], (details, leg(hub, number))
    assert leg(hub, 2)["refund_txid"] == leg(sleeper, 2)["refund_txid"], (hub, sleeper)
    assert leg(hub, 1)["claim_txid"] is None, hub
    for name, own_leg in (("sleeper", 1), ("hub", 2)):
        assert [t.leg for t in locks_in(outcome.journals[name])] == [own_leg], outcome.journals[name]
    # Nobody was paid: the secret never left the initiator, and its funds came back less gas.
    assert no_reveal(outcome.timelines["sleeper"])
    assert not [t for t in outcome.journals["sleeper"] if t.purpose == "claim"]
    assert not [t for t in outcome.journals["hub"] if t.purpose == "claim"]
    before, after = outcome.before["sleeper"], outcome.after["sleeper"]
    assert_paid("sleeper ETH", before.eth, after.eth, 0, MAX_EVM_FEES_WEI)
    assert after.btc == before.btc
    assert first_at(outcome.timelines["hub"], S.REFUNDING) >= deadline_of(hub, 2)
    assert first_at(outcome.timelines["sleeper"], S.REFUNDING) >= deadline_of(sleeper, 1)
    await assert_audit_intact(net, "hub", "sleeper")


async def test_a_late_claim_makes_the_participant_claim_near_its_deadline(
    fault_runs: Runs, net: Localnet
) -> None:
    outcome = await outcome_of(fault_runs, "late_claim")
    assert rank(outcome.notes["killed_at"]) < rank(S.LEG2_CLAIMING), outcome.notes
    for name in ("late", "hub"):
        assert outcome.documents[name]["status"] == S.COMPLETED, outcome.documents[name]
    late_daemon = next(d for d in net.daemons if d.name == "late")
    hub_daemon = next(d for d in net.daemons if d.name == "hub")
    for daemon in (late_daemon, hub_daemon):
        await assert_settled(net, daemon, outcome.swap_id)
    for name, own_leg in (("late", 1), ("hub", 2)):
        assert [t.leg for t in locks_in(outcome.journals[name])] == [own_leg], outcome.journals[name]
    # The secret came out only after the restart, shortly before the reveal cut-off; the hub claimed leg 1
    # after that, in the last part of leg 1's window, and in time.
    cutoff = outcome.notes["cutoff"]
    revealed = first_at(outcome.timelines["late"], S.LEG2_CLAIMING)
    assert cutoff - timedelta(seconds=LATE_RESTART_LEAD_S) <= revealed <= cutoff
    hub = outcome.documents["hub"]
    claimed = first_at(outcome.timelines["hub"], S.LEG1_CLAIMING)
    assert revealed <= claimed < deadline_of(hub, 1)
    assert claimed > deadline_of(hub, 2) - timedelta(seconds=LATE_RESTART_LEAD_S * 2)
    before, after = outcome.before["late"], outcome.after["late"]
    assert_paid("late BTC", before.btc, after.btc, -BTC_AMOUNT, MAX_BTC_FEES_SATS)
    assert_paid("late ETH", before.eth, after.eth, ETH_AMOUNT, MAX_EVM_FEES_WEI)


async def test_a_lock_with_wrong_terms_is_never_answered(fault_runs: Runs, net: Localnet) -> None:
    outcome = await outcome_of(fault_runs, "wrong_lock")
    hub = outcome.documents["hub"]
    assert hub["role"] == "participant" and hub["status"] == S.CANCELLED, hub
    assert leg(hub, 2)["lock_txid"] is None and leg(hub, 1)["claim_txid"] is None, hub
    assert outcome.journals["hub"] == [], "the participant signed something for a swap it must not answer"
    # Both wrong locks are mined (evm_lock_eth checked their receipts), yet the hub never took either for
    # leg 1: the EVM scanner reports only locks with at least the agreed amount and timelock (S1).
    assert len(outcome.notes["wrong_locks"]) == 2, outcome.notes
    assert leg(hub, 1)["lock_txid"] is None, hub
    assert S.LEG1_LOCKED not in statuses(outcome.timelines["hub"])
    await assert_audit_intact(net, "hub", "absent")


async def test_the_shared_participant_paid_only_for_the_completed_swap(fault_runs: Runs) -> None:
    """The hub refunded its BTC lock in two scenarios, ignored a third and completed the late one."""
    outcome = await outcome_of(fault_runs, "hub_balances")
    before, after = outcome.before["hub"], outcome.after["hub"]
    assert_paid("hub BTC", before.btc, after.btc, BTC_AMOUNT, 3 * MAX_BTC_FEES_SATS)
    assert_paid("hub ETH", before.eth, after.eth, -ETH_AMOUNT, 2 * MAX_EVM_FEES_WEI)
