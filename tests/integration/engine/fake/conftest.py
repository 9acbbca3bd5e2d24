"""Desks whose engines run on fake chains: the engine's and capture's own behaviour, in milliseconds.

Two fake chains, "eth" (native ETH) and "usd" (a USD token, fees in GAS), stand in for the nodes; each desk
has its own SQLite store and one ``FakeChainAdapter`` per chain, run by the same ``ChainLoop`` the daemon
uses. Time is the test's: the engines read ``World.now``, and blocks come only when the test mines them,
exactly one ``BLOCK_INTERVAL`` apart, so a chain that runs ahead of the engines' clock is one call away.
What needs a real node (contract calls, fee bumps, scripts) stays in the tests beside this directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from settlerd.chains.supervisor import ChainLoop
from settlerd.engine import Capture, CaptureSettings, Engine, LegRequest, Limits, NodeKey, OfferRequest
from settlerd.store import Store
from settlerd.swap import Policy, Status
from settlerd.testing import FakeChain, FakeChainAdapter

FINALITY = 2
BLOCK_INTERVAL = timedelta(seconds=30)
TICK = timedelta(seconds=0.05)  # the engines' tick in real time: the fake chains answer at once
WAIT_S = 20.0  # the longest any swap may take to reach a status the test waits for
# The same policy and durations as the desks on anvil: swaps of an hour, decisions within minutes.
POLICY = Policy(
    leg1_claim_margin=timedelta(minutes=15),
    min_leg2_duration=timedelta(minutes=10),
    min_leg2_window=timedelta(minutes=5),
    min_time_to_reveal=timedelta(minutes=2),
    claim_urgent_window=timedelta(minutes=5),
)
FUNDS = 10**20
ETH_AMOUNT = 10**17
USD_AMOUNT = 5_000


class World:
    """The fake chains and the engines' clock, which the test moves together or apart."""

    def __init__(self) -> None:
        self.chains = {
            "eth": FakeChain("eth", native_asset="ETH", block_interval=BLOCK_INTERVAL),
            "usd": FakeChain("usd", native_asset="GAS", tokens=["USD"], block_interval=BLOCK_INTERVAL),
        }
        self.now = self.chains["eth"].genesis_time

    def clock(self) -> datetime:
        return self.now

    def mine(self, blocks: int = 1) -> None:
        """``blocks`` on every chain, and the clock moves on with them."""
        for chain in self.chains.values():
            chain.mine(blocks)
        self.now += blocks * BLOCK_INTERVAL

    def advance(self, by: timedelta) -> None:
        self.mine(-(-by // BLOCK_INTERVAL))

    def run_ahead(self, chain: str, by: timedelta) -> None:
        """One chain mines ``by`` worth of blocks while the engines' clock stays where it was."""
        self.chains[chain].mine(-(-by // BLOCK_INTERVAL))


@dataclass
class Desk:
    name: str
    store: Store
    engine: Engine
    capture: Capture
    adapters: dict[str, FakeChainAdapter]
    node_key: NodeKey
    task: asyncio.Task[None] | None = None
    loops: dict[str, ChainLoop] = field(default_factory=dict)


MakeDesk = Callable[..., Awaitable[Desk]]


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
async def make_desk(world: World, tmp_path: Path) -> AsyncIterator[MakeDesk]:
    desks: list[Desk] = []

    async def make(name: str, *, like: Desk | None = None, limits: Limits | None = None) -> Desk:
        """A new funded desk, or with ``like`` the same desk restarted on its database and accounts."""
        store = await Store.open(str(tmp_path / f"{name}.sqlite3"))
        adapters = {}
        for chain_name, chain in world.chains.items():
            account = chain.account(f"{name}/{chain_name}")
            if like is None:
                for asset in chain.assets:
                    chain.fund(account, asset, FUNDS)
            adapters[chain_name] = FakeChainAdapter(chain, account, store, finality_depth=FINALITY)
        for adapter in adapters.values():
            await adapter.start()
        engine = Engine(store, adapters, tick=TICK, clock=world.clock, limits=limits)
        node_key = like.node_key if like else NodeKey(secrets.token_bytes(32))
        settings = CaptureSettings(
            node_id=name,
            leg1_duration=timedelta(minutes=60),
            leg2_duration=timedelta(minutes=30),
            policy=POLICY,
            finality_depth={"eth": FINALITY, "usd": FINALITY},
            counterparty_keys={},
            allow_unknown_counterparties=True,
        )
        desk = Desk(name, store, engine, Capture(engine, node_key, settings), adapters, node_key)
        desk.loops = {chain: ChainLoop(chain, adapter) for chain, adapter in adapters.items()}
        await engine.resume()
        desk.task = asyncio.create_task(run_desk(desk), name=f"desk-{name}")
        desks.append(desk)
        return desk

    yield make
    for desk in desks:
        await stop(desk)


async def run_desk(desk: Desk) -> None:
    """What the daemon runs: each chain's supervised loop and the engine, until cancelled."""
    async with asyncio.TaskGroup() as tasks:
        for chain, loop in desk.loops.items():
            tasks.create_task(loop.run(), name=f"chain-{chain}")
        tasks.create_task(desk.engine.run(), name="engine")


async def stop(desk: Desk) -> None:
    """Stop a desk as a crash would leave it: the engine and chain loops cancelled, connections closed."""
    if desk.task is None:
        return
    desk.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await desk.task
    desk.task = None
    for adapter in desk.adapters.values():
        await adapter.close()
    await desk.store.close()


@pytest.fixture
async def miner(world: World) -> AsyncIterator[None]:
    """A block on every chain every 20 ms of real time (each one interval of the engines' time)."""

    async def mine() -> None:
        while True:
            world.mine()
            await asyncio.sleep(0.02)

    task = asyncio.create_task(mine(), name="fake-miner")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def status_of(desk: Desk, swap_id: str) -> str:
    row = await desk.store.get_swap(swap_id)
    assert row is not None
    return row.status


async def wait_status(desk: Desk, swap_id: str, *wanted: Status) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        status = await status_of(desk, swap_id)
        if status in wanted:
            return status
        if loop.time() > deadline:
            timeline = [(e.kind, e.status) for e in await desk.store.events(swap_id=swap_id, limit=None)]
            raise AssertionError(f"{desk.name}: swap {swap_id} is {status}, wanted {wanted}; {timeline}")
        await asyncio.sleep(0.01)


async def wait_for(condition: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(WAIT_S):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.01)


def request(b: Desk, give: LegRequest | None = None, get: LegRequest | None = None) -> OfferRequest:
    """An offer of ETH for USD to ``b``, by default."""
    return OfferRequest(
        b.name, give or LegRequest("eth", "ETH", ETH_AMOUNT), get or LegRequest("usd", "USD", USD_AMOUNT)
    )


async def trade(a: Desk, b: Desk, offer: OfferRequest | None = None) -> str:
    """Capture on both sides: A offers, B accepts, A registers the acceptance."""
    document = await a.capture.create_offer(offer or request(b))
    await a.capture.register_acceptance(document["swap_id"], await b.capture.accept_offer(document))
    return str(document["swap_id"])
