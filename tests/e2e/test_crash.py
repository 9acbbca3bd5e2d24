"""Crash test: SIGKILL one daemon at each step of the protocol, restart it, and every swap ends safely.

One initiator and one participant (four-minute policy) run a swap per kill point; each swap is started,
watched until the chosen daemon reaches the step, the daemon is killed (no clean shutdown) and restarted
at once. Earlier swaps are still in flight and go through the later kills too. At the end every swap is
either completed on both sides or refunded on both sides, each leg was funded by one transaction only,
and the balances moved by exactly the completed swaps, less fees.
"""

from __future__ import annotations

import asyncio
import sys

import pytest
from localnet import Daemon, Localnet, btc, eth

from settlerd.swap import Status

from .faults import leg, live_locks, open_refund, wait_end, wait_reached
from .settlement import MAX_BTC_FEES_SATS, MAX_EVM_FEES_WEI, assert_paid, balances

BTC_AMOUNT = 1_000_000
ETH_AMOUNT = 10**17
# A swap the crash turned into a refund ends after leg 1's four-minute deadline.
END_TIMEOUT_S = 330.0
S = Status
# (who is killed, the step it is killed at, what the initiator gives). A step that lasts until the next
# block is caught on the chain that makes it last: leg 1's lock and the participant's claim on regtest
# when the initiator gives BTC, leg 2's lock and the initiator's claim on regtest when it gives ETH.
KILL_POINTS: tuple[tuple[str, Status, str], ...] = (
    ("participant", S.ACCEPTED, "btc"),
    ("initiator", S.LEG1_LOCKING, "btc"),
    ("initiator", S.LEG1_LOCKED, "btc"),
    ("participant", S.LEG1_LOCKED, "btc"),
    ("participant", S.LEG1_FINAL, "eth"),
    ("initiator", S.LEG1_FINAL, "eth"),
    ("participant", S.LEG2_LOCKING, "eth"),
    ("initiator", S.LEG2_LOCKED, "eth"),
    ("participant", S.LEG2_LOCKED, "eth"),
    ("initiator", S.LEG2_FINAL, "btc"),
    ("initiator", S.LEG2_CLAIMING, "eth"),
    ("participant", S.LEG2_CLAIMED, "btc"),
    ("participant", S.LEG1_CLAIMING, "btc"),
    ("initiator", S.LEG2_CLAIMED, "btc"),
    ("participant", S.LEG1_CLAIMED, "btc"),
)
# The crash points reached must cover most of the protocol; a step passed between two polls is killed in
# the next one, which is still a crash, only not the one aimed at.
MIN_DISTINCT_KILL_POINTS = 10


async def kill_at(
    net: Localnet, initiator: Daemon, participant: Daemon, victim: str, step: Status, gives: str
) -> tuple[str, Status]:
    give, get = (btc(BTC_AMOUNT), eth(ETH_AMOUNT)) if gives == "btc" else (eth(ETH_AMOUNT), btc(BTC_AMOUNT))
    target = initiator if victim == "initiator" else participant
    if step is S.ACCEPTED:  # between the participant's acceptance and the initiator's registration
        body = {"counterparty": participant.node_id, "give": give, "get": get}
        offer = await net.api(initiator, "POST", "/v1/swaps", body)
        acceptance = await net.api(participant, "POST", "/v1/offers/accept", offer)
        await net.kill(participant)
        swap_id = str(offer["swap_id"])
        await net.api(initiator, "POST", f"/v1/swaps/{swap_id}/acceptance", acceptance)
        seen = S.ACCEPTED
    else:
        swap_id = await net.trade(initiator, participant, give=give, get=get)
        seen = await wait_reached(net, target, swap_id, step)
        await net.kill(target)
    await net.start(target)
    return swap_id, seen


@pytest.mark.usefixtures("fault_runs")  # the deadline-waiting scenarios run meanwhile
async def test_sigkill_at_every_step_ends_every_swap_safely(
    net: Localnet, crash_desks: tuple[Daemon, Daemon]
) -> None:
    initiator, participant = crash_desks
    i0, p0 = await balances(net, initiator), await balances(net, participant)

    kills = []
    for victim, step, gives in KILL_POINTS:
        swap_id, seen = await kill_at(net, initiator, participant, victim, step, gives)
        kills.append((swap_id, victim, step, seen, gives))

    # Let the latest leg 1 deadline pass on both chains, for the swaps a crash turned into refunds.
    btc_legs = [await net.swap(initiator, k[0]) for k in kills if k[4] == "btc"]
    last = max(btc_legs, key=lambda doc: int(leg(doc, 1)["timelock"]))
    deadlines = asyncio.create_task(open_refund(net, last, 1))
    ends = await asyncio.gather(
        *(wait_end(net, d, k[0], END_TIMEOUT_S) for k in kills for d in (initiator, participant))
    )
    deadlines.cancel()
    sys.stderr.write(
        "\ncrash points (victim, aimed at, killed in, outcome):\n"
        + "".join(
            f"  {victim:11} {step:14} {seen:14} {ends[2 * n]['status']}\n"
            for n, (_, victim, step, seen, _) in enumerate(kills)
        )
    )

    completed = {"btc": 0, "eth": 0}
    for n, (swap_id, victim, step, seen, gives) in enumerate(kills):
        mine, theirs = ends[2 * n], ends[2 * n + 1]
        where = (swap_id, victim, step, seen)
        # A safe end: both claimed or both refunded (or the participant never locked), never one side
        # paid and the other not.
        assert (mine["status"], theirs["status"]) in (
            (S.COMPLETED, S.COMPLETED),
            (S.REFUNDED, S.REFUNDED),
            (S.REFUNDED, S.CANCELLED),
        ), (where, mine["status"], theirs["status"])
        for document in (mine, theirs):
            for details in document["legs"]:
                assert not (details["claim_txid"] and details["refund_txid"]), (where, details)
                if document["status"] == S.COMPLETED:
                    assert details["lock_txid"] and details["claim_txid"], (where, document["role"], details)
        # S4: one funding transaction per leg, journaled by the side that owns it, the one on chain.
        for daemon, own_leg, document in ((initiator, 1, mine), (participant, 2, theirs)):
            if document["status"] == S.CANCELLED:
                assert live_locks(daemon, swap_id) == [], (where, daemon.name)
                continue
            locks = live_locks(daemon, swap_id)
            assert [t.leg for t in locks] == [own_leg], (where, daemon.name, locks)
            on_chain = next(x for x in document["legs"] if x["leg"] == own_leg)["lock_txid"]
            assert locks[0].txid == on_chain, (where, daemon.name, locks, on_chain)
        if mine["status"] == S.COMPLETED:
            completed[gives] += 1

    seen_points = {(victim, seen) for _, victim, _, seen, _ in kills}
    assert len(seen_points) >= MIN_DISTINCT_KILL_POINTS, sorted(seen_points)

    # Balances moved by the completed swaps only, less at most one lock and one claim's fees per swap.
    i1, p1 = await balances(net, initiator), await balances(net, participant)
    btc_to_participant = (completed["btc"] - completed["eth"]) * BTC_AMOUNT
    eth_to_initiator = (completed["btc"] - completed["eth"]) * ETH_AMOUNT
    n = len(kills)
    assert_paid("initiator BTC", i0.btc, i1.btc, -btc_to_participant, n * MAX_BTC_FEES_SATS)
    assert_paid("participant BTC", p0.btc, p1.btc, btc_to_participant, n * MAX_BTC_FEES_SATS)
    assert_paid("initiator ETH", i0.eth, i1.eth, eth_to_initiator, n * MAX_EVM_FEES_WEI)
    assert_paid("participant ETH", p0.eth, p1.eth, -eth_to_initiator, n * MAX_EVM_FEES_WEI)
    for daemon in (initiator, participant):
        code, output = await net.audit_verify(daemon)
        assert code == 0 and "intact" in output, output

    # Liveness: a daemon restarted at once still sees the counterparty's lock, even one mined while it was
    # down (the engine watches its swaps' legs before the adapters catch up), so every swap completes.
    unfinished = [(k[1], k[2], k[3], e["status"]) for k, e in zip(kills, ends[::2], strict=True)]
    assert all(status == S.COMPLETED for *_, status in unfinished), unfinished
