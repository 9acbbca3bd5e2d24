"""One local network per session (regtest node, anvil with the HTLC contract and a test ERC-20, two funded
settlerd processes), shared by every e2e test: starting chains and daemons costs more than a swap here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from localnet import Daemon, Localnet, localnet

from .fault_scenarios import FaultDaemons, Outcome, start_fault_scenarios
from .faults import add_fast_daemons

EXTRA_COINS = 4
EXTRA_COIN_SATS = 50_000_000


@pytest.fixture(scope="session")
async def net(request: pytest.FixtureRequest) -> AsyncIterator[Localnet]:
    failed_before = request.session.testsfailed
    async with localnet(("desk-a", "desk-b"), token=True) as network:
        yield network
        # Keep configs, logs and databases of a session in which an e2e test failed.
        network.keep = request.session.testsfailed > failed_before


@pytest.fixture
def desks(net: Localnet) -> tuple[Daemon, Daemon]:
    a, b = net.daemons[:2]  # the fault fixtures add daemons of their own after these two
    return a, b


@pytest.fixture(scope="session")
async def fast_daemons(net: Localnet) -> list[Daemon]:
    """Six more daemons on the four-minute policy, added in one go: four for the fault scenarios, an
    initiator and a participant for the crash test."""
    daemons = await add_fast_daemons(net, ("hub", "absent", "sleeper", "late", "crash-i", "crash-p"))
    hub, crash_i, crash_p = daemons[0], daemons[4], daemons[5]
    # These lock BTC in several swaps at once; a lock only spends confirmed coins, so one coin alone would
    # leave the next lock nothing to spend until the first one's change confirmed.
    await asyncio.gather(
        *(net.fund_btc(d, EXTRA_COIN_SATS, outputs=EXTRA_COINS) for d in (hub, crash_i, crash_p))
    )
    return daemons


@pytest.fixture(scope="session")
async def fault_runs(
    fast_daemons: list[Daemon], net: Localnet
) -> AsyncIterator[dict[str, asyncio.Task[Outcome]]]:
    """The deadline-waiting fault scenarios, started once in the background; tests await their outcomes,
    so the waits overlap each other and the rest of the session."""
    hub, absent, sleeper, late = fast_daemons[:4]
    runs = await start_fault_scenarios(net, FaultDaemons(hub, absent, sleeper, late))
    yield runs
    for task in runs.values():
        task.cancel()
    await asyncio.gather(*runs.values(), return_exceptions=True)


@pytest.fixture(scope="session")
def crash_desks(fast_daemons: list[Daemon]) -> tuple[Daemon, Daemon]:
    initiator, participant = fast_daemons[4:]
    return initiator, participant
