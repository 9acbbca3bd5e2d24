"""The fault scenarios that wait for deadlines, driven side by side in the background of the e2e session.

Each scenario only drives its swap (trade capture, stopping and restarting daemons, manual locks, letting
deadlines pass) and returns what it saw; the tests in test_faults.py await it and assert. Running them as
tasks lets their four-minute deadlines overlap with each other and with the foreground tests.

Daemons (all on the four-minute policy of faults.py):
    hub      stays up throughout; counterparty of every scenario
    absent   accepts the hub's offer and is stopped at once; its EVM account then plays a manual initiator
    sleeper  initiator killed once leg 1 is final, restarted after leg 2's deadline
    late     initiator killed once leg 1 is final, restarted shortly before its reveal cut-off
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from localnet import Daemon, Localnet, btc, eth

from settlerd.swap import Status

from .faults import (
    MIN_TIME_TO_REVEAL_S,
    REFUND_TIMEOUT_S,
    JournaledTx,
    deadline_of,
    evm_lock_eth,
    journal,
    open_refund,
    sleep_until,
    wait_end,
    wait_reached,
)
from .settlement import Balances, balances

BTC_AMOUNT = 2_000_000
ETH_AMOUNT = 2 * 10**17
# The late initiator is restarted this long before its reveal cut-off: enough to start, catch its scanners
# up and claim on a busy machine, little enough that the participant's claim comes close to its deadline.
LATE_RESTART_LEAD_S = 40
# A wrong lock the participant must ignore: one wei short, and the right amount with a minute less.
SHORT_BY_WEI = 1
EARLY_BY_S = 60
SETTLE_TIMEOUT_S = 120.0
# The hub gives up on leg 1 once leg 2 could no longer be locked safely, 80 s after capture.
WRONG_LOCK_TIMEOUT_S = 180.0


@dataclass
class Outcome:
    """What a scenario saw: final status documents, timelines and journals per daemon, timings."""

    swap_id: str
    seconds: float = 0.0
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    timelines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    journals: dict[str, list[JournaledTx]] = field(default_factory=dict)
    before: dict[str, Balances] = field(default_factory=dict)
    after: dict[str, Balances] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    async def record(self, net: Localnet, *daemons: Daemon) -> None:
        for daemon in daemons:
            self.documents[daemon.name] = await net.swap(daemon, self.swap_id)
            self.timelines[daemon.name] = await net.timeline(daemon, self.swap_id)
            self.journals[daemon.name] = journal(daemon, self.swap_id)


@dataclass
class FaultDaemons:
    hub: Daemon
    absent: Daemon
    sleeper: Daemon
    late: Daemon


async def _timed(started: float, outcome: Outcome, body: Awaitable[None]) -> Outcome:
    await body
    outcome.seconds = time.monotonic() - started
    return outcome


async def start_fault_scenarios(net: Localnet, d: FaultDaemons) -> dict[str, asyncio.Task[Outcome]]:
    """Capture every scenario's trade (their order matters: the absent daemon is stopped right after it
    accepted), then run each to its end in a task of its own."""
    started = time.monotonic()
    sleeper_before = await balances(net, d.sleeper)
    late_before = await balances(net, d.late)
    hub_before = await balances(net, d.hub)

    # Initiator never claims: the sleeper gives ETH (leg 1 on anvil), the hub BTC (leg 2 on regtest).
    never_claims = Outcome(await net.trade(d.sleeper, d.hub, give=eth(ETH_AMOUNT), get=btc(BTC_AMOUNT)))
    never_claims.before = {d.sleeper.name: sleeper_before}
    # Late claim: the late daemon gives BTC (leg 1 on regtest), the hub ETH (leg 2 on anvil).
    late_claim = Outcome(await net.trade(d.late, d.hub, give=btc(BTC_AMOUNT), get=eth(ETH_AMOUNT)))
    late_claim.before = {d.late.name: late_before}
    # Wrong lock: the absent daemon offers ETH for BTC and the hub accepts, but the acceptance is never
    # registered, so the absent daemon never locks; its account locks leg 1 by hand with wrong terms.
    offer = await net.api(
        d.absent,
        "POST",
        "/v1/swaps",
        {"counterparty": d.hub.node_id, "give": eth(ETH_AMOUNT), "get": btc(BTC_AMOUNT)},
    )
    await net.api(d.hub, "POST", "/v1/offers/accept", offer)
    wrong_lock = Outcome(str(offer["swap_id"]))
    # Participant never locks: the hub gives BTC (leg 1 on regtest); the absent daemon accepts and stops.
    offer = await net.api(
        d.hub,
        "POST",
        "/v1/swaps",
        {"counterparty": d.absent.node_id, "give": btc(BTC_AMOUNT), "get": eth(ETH_AMOUNT)},
    )
    acceptance = await net.api(d.absent, "POST", "/v1/offers/accept", offer)
    await net.stop(d.absent)
    never_locks = Outcome(str(offer["swap_id"]))
    await net.api(d.hub, "POST", f"/v1/swaps/{never_locks.swap_id}/acceptance", acceptance)

    tasks = {
        "participant_never_locks": _participant_never_locks(net, d, never_locks),
        "initiator_never_claims": _initiator_never_claims(net, d, never_claims),
        "late_claim": _late_claim(net, d, late_claim),
        "wrong_lock": _wrong_lock(net, d, wrong_lock),
    }
    runs = {
        name: asyncio.create_task(_timed(started, outcome, body), name=f"e2e-{name}")
        for name, (outcome, body) in tasks.items()
    }
    # The scenarios only, taken before this task joins the dict: a task that gathered itself never ends.
    scenarios = list(runs.values())
    runs["hub_balances"] = asyncio.create_task(_hub_balances(net, d.hub, hub_before, scenarios, started))
    return runs


async def _hub_balances(
    net: Localnet, hub: Daemon, before: Balances, scenarios: list[asyncio.Task[Outcome]], started: float
) -> Outcome:
    """The hub's balances once every scenario it took part in has ended."""
    await asyncio.gather(*scenarios)
    outcome = Outcome("")
    outcome.before[hub.name] = before
    outcome.after[hub.name] = await balances(net, hub)
    outcome.seconds = time.monotonic() - started
    return outcome


def _participant_never_locks(
    net: Localnet, d: FaultDaemons, outcome: Outcome
) -> tuple[Outcome, Awaitable[None]]:
    async def body() -> None:
        document = await net.wait_status(d.hub, outcome.swap_id, Status.LEG1_FINAL, timeout=SETTLE_TIMEOUT_S)
        await open_refund(net, document, 1)
        await wait_end(net, d.hub, outcome.swap_id, REFUND_TIMEOUT_S)
        await outcome.record(net, d.hub)

    return outcome, body()


def _initiator_never_claims(
    net: Localnet, d: FaultDaemons, outcome: Outcome
) -> tuple[Outcome, Awaitable[None]]:
    async def body() -> None:
        outcome.notes["killed_at"] = await wait_reached(net, d.sleeper, outcome.swap_id, Status.LEG1_FINAL)
        await net.kill(d.sleeper)
        document = await net.wait_status(d.hub, outcome.swap_id, Status.LEG2_FINAL, timeout=SETTLE_TIMEOUT_S)
        await open_refund(net, document, 2)
        await wait_end(net, d.hub, outcome.swap_id, REFUND_TIMEOUT_S)
        await net.start(d.sleeper)  # after leg 2's deadline: too late to reveal, only leg 1's refund is left
        await open_refund(net, document, 1)
        await wait_end(net, d.sleeper, outcome.swap_id, REFUND_TIMEOUT_S)
        await outcome.record(net, d.hub, d.sleeper)
        outcome.after[d.sleeper.name] = await balances(net, d.sleeper)

    return outcome, body()


def _late_claim(net: Localnet, d: FaultDaemons, outcome: Outcome) -> tuple[Outcome, Awaitable[None]]:
    async def body() -> None:
        outcome.notes["killed_at"] = await wait_reached(net, d.late, outcome.swap_id, Status.LEG1_FINAL)
        await net.kill(d.late)
        document = await net.wait_status(d.hub, outcome.swap_id, Status.LEG2_FINAL, timeout=SETTLE_TIMEOUT_S)
        cutoff = deadline_of(document, 2) - timedelta(seconds=MIN_TIME_TO_REVEAL_S)
        await sleep_until(cutoff - timedelta(seconds=LATE_RESTART_LEAD_S))
        await net.start(d.late)
        outcome.notes["cutoff"] = cutoff
        for daemon in (d.late, d.hub):
            await wait_end(net, daemon, outcome.swap_id, SETTLE_TIMEOUT_S)
        await outcome.record(net, d.hub, d.late)
        outcome.after[d.late.name] = await balances(net, d.late)

    return outcome, body()


def _wrong_lock(net: Localnet, d: FaultDaemons, outcome: Outcome) -> tuple[Outcome, Awaitable[None]]:
    async def body() -> None:
        terms = next(x for x in (await net.swap(d.hub, outcome.swap_id))["legs"] if x["leg"] == 1)
        amount, timelock = int(terms["amount"]), int(terms["timelock"])
        args = (d.absent.evm_key, terms["recipient"], terms["hashlock"])
        outcome.notes["wrong_locks"] = [
            await evm_lock_eth(net, *args, timelock, amount - SHORT_BY_WEI),
            await evm_lock_eth(net, *args, timelock - EARLY_BY_S, amount),
        ]
        await wait_end(net, d.hub, outcome.swap_id, WRONG_LOCK_TIMEOUT_S)
        await outcome.record(net, d.hub)

    return outcome, body()
