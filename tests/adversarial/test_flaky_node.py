"""A node that answers badly for a while must not blind the daemon (issue 11).

A fault-injecting HTTP proxy sits in front of the regtest Bitcoin node and anvil and, on command, answers
502, resets the connection, hangs past the client's timeout, or returns garbage JSON. Before, one burst of
502s right after the participant's leg-2 lock ended its EVM scanner silently: the initiator claimed leg 2,
the participant never saw the claim nor learnt the secret, and stayed at leg2_locked, a leg poorer.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from eth_typing import HexStr
from settlerd_bitcoin import factory as bitcoin_factory
from settlerd_evm.adapter import EvmAdapter, EvmSettings
from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound

from settlerd.adapters import ChainAdapter
from settlerd.api import Metrics, Readiness
from settlerd.chains import health as chain_health
from settlerd.chains.supervisor import ChainLoop
from settlerd.store import Store
from settlerd.swap import Status
from tests.fixtures.anvil import Anvil
from tests.fixtures.timeouts import TIMEOUT_FACTOR
from tests.integration.engine.conftest import (
    Desk,
    MakeDesk,
    clock,
    fresh_keys,
    htlc_address,
    make_desk,
    miner,
    token,
    w3,
)
from tests.integration.engine.test_settle import ETH_AMOUNT, trade, wait_status

__all__ = ["clock", "fresh_keys", "htlc_address", "make_desk", "miner", "token", "w3"]

BURST_S = 3.0  # the burst of 502s that blinded the participant when tried by hand
RPC_TIMEOUT_S = 0.5  # the adapters' per-call timeout in the fault tour: a hang costs little test time
HANG_LIMIT_S = 5.0  # a hung request is answered at last after this long, if the fault is still on
WAIT_S = 30 * TIMEOUT_FACTOR
GARBAGE = b'{"jsonrpc": "2.0", "id": 1, "result": [1, 2'  # cut off mid-answer


class Fault(enum.Enum):
    BAD_GATEWAY = "502"
    RESET = "reset"
    HANG = "hang"
    GARBAGE = "garbage"


class FaultProxy:
    """Forwards JSON-RPC POSTs to ``upstream`` (credentials included) unless ``fault`` is set."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self._fault: Fault | None = None
        self._healed = asyncio.Event()
        self.faulted = 0  # requests answered with the fault
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def fault(self) -> Fault | None:
        return self._fault

    @fault.setter
    def fault(self, fault: Fault | None) -> None:
        self._fault = fault
        if fault is None:
            self._healed.set()
        else:
            self._healed.clear()

    async def start(self) -> str:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def close(self) -> None:
        self.fault = None
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = self.fault
        if fault is not None:
            self.faulted += 1
        if fault is Fault.BAD_GATEWAY:
            return web.Response(status=502, text="<html><body>502 Bad Gateway</body></html>")
        if fault is Fault.GARBAGE:
            return web.Response(status=200, body=GARBAGE, content_type="application/json")
        if fault is Fault.RESET:
            # SO_LINGER with a zero timeout turns the close into a TCP reset, as a crashing balancer sends.
            sock = request.transport.get_extra_info("socket") if request.transport else None
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)  # never sent: the connection is gone
        if fault is Fault.HANG:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._healed.wait(), HANG_LIMIT_S)
        headers = {k: v for k, v in request.headers.items() if k in ("Authorization", "Content-Type")}
        assert self._session is not None
        async with self._session.post(self.upstream, data=body, headers=headers) as upstream:
            reply = await upstream.read()
            return web.Response(status=upstream.status, body=reply, content_type="application/json")


@pytest.fixture
async def evm_proxy(anvil: Anvil) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(anvil.rpc_url)
    await proxy.start()
    yield proxy
    await proxy.close()


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting until {what}")
        await asyncio.sleep(0.1)


async def mined_lock(participant: Desk, swap_id: str, w3: AsyncWeb3) -> None:
    """The participant's leg-2 lock, the moment it is mined: before the initiator can claim it."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        locks = [
            t.txid
            for t in await participant.store.signed_txs(swap_id=swap_id)
            if t.purpose == "lock" and t.leg == 2
        ]
        if locks:
            with contextlib.suppress(TransactionNotFound):
                if (await w3.eth.get_transaction_receipt(HexStr(locks[0])))["status"] == 1:
                    return
        await asyncio.sleep(0.02)
    raise AssertionError("the participant's leg-2 lock was not mined")


# (a) The attack of issue 11, with two engines on anvil: 502s on the participant's leg-2 chain.


@pytest.mark.anvil
async def test_a_burst_of_502s_after_leg2_lock_does_not_blind_the_participant(
    make_desk: MakeDesk,
    miner: None,
    token: Any,
    w3: AsyncWeb3,
    evm_proxy: FaultProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = await make_desk("desk-a")
    # The participant watches leg 2 ("usd", where the initiator's claim reveals the secret) through the
    # proxy; its leg 1 chain and the whole initiator talk to anvil directly.
    b = await make_desk("desk-b", rpc_urls={"usd": evm_proxy.url})
    b_eth_before = await w3.eth.get_balance(b.address("eth"))

    swap_id = await trade(a, b, token)
    await mined_lock(b, swap_id, w3)
    evm_proxy.fault = Fault.BAD_GATEWAY
    began = time.monotonic()
    # The initiator sees leg 2 final and claims it, revealing the secret, while the burst goes on.
    await wait_status(a, swap_id, Status.LEG2_CLAIMED, Status.LEG1_CLAIMING, Status.LEG1_CLAIMED)
    await asyncio.sleep(max(0.0, BURST_S - (time.monotonic() - began)))
    evm_proxy.fault = None
    assert evm_proxy.faulted > 0

    assert await wait_status(b, swap_id, Status.COMPLETED) == Status.COMPLETED
    assert await wait_status(a, swap_id, Status.COMPLETED) == Status.COMPLETED
    # Leg 1 paid the participant (less the gas of its claim) instead of staying locked for the initiator.
    assert await w3.eth.get_balance(b.address("eth")) > b_eth_before + ETH_AMOUNT * 9 // 10
    failures = [
        r for r in caplog.records if r.name == "settlerd.chains.supervisor" and r.levelno == logging.ERROR
    ]
    assert failures and "chain usd: its scanner loop failed" in failures[0].getMessage()


# (b) Every fault kind on each chain: the loop restarts, the failure is logged at error level, and the
# chain is not ready during the fault and ready again after it.


async def _bitcoin_adapter(
    bitcoin_node: Any, proxy: FaultProxy, store: Store
) -> tuple[ChainAdapter, Callable[[], Awaitable[None]]]:
    birthday = int(await bitcoin_node.rpc("getblockcount"))
    adapter = bitcoin_factory(
        {
            "name": "btc",
            "rpc_url": proxy.url,
            "rpc_user": bitcoin_node.rpc_user,
            "rpc_password": bitcoin_node.rpc_password,
            "network": "regtest",
            "seed": os.urandom(32).hex(),
            "birthday_height": birthday,
            "finality_depth": 3,
            "poll_interval": 0.1,
            "rpc_timeout": RPC_TIMEOUT_S,
        },
        store,
    )

    async def mine() -> None:
        await bitcoin_node.mine(3)

    return adapter, mine


async def _evm_adapter(
    anvil: Anvil, htlc_address: str, proxy: FaultProxy, store: Store
) -> tuple[ChainAdapter, Callable[[], Awaitable[None]]]:
    settings = {
        "name": "eth",
        "rpc_url": proxy.url,
        "contract": htlc_address,
        "private_key": "0x" + os.urandom(32).hex(),  # reads only: no funds needed
        "finality_depth": 2,
        "poll_interval_s": 0.1,
        "rpc_timeout": RPC_TIMEOUT_S,
    }
    adapter = EvmAdapter(EvmSettings.from_mapping(settings), store)

    async def mine() -> None:
        for _ in range(3):
            await asyncio.to_thread(anvil.rpc, "evm_mine")

    return adapter, mine


@pytest.mark.bitcoind
async def test_every_fault_kind_on_bitcoin_is_survived_and_reported(
    bitcoin_node: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = FaultProxy(bitcoin_node.rpc_url)
    await proxy.start()
    store = await Store.open(str(tmp_path / "settlerd.sqlite3"))
    adapter, mine = await _bitcoin_adapter(bitcoin_node, proxy, store)
    try:
        await tour("btc", adapter, mine, proxy, caplog)
    finally:
        await proxy.close()
        await store.close()


@pytest.mark.anvil
async def test_every_fault_kind_on_evm_is_survived_and_reported(
    anvil: Anvil, htlc_address: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = FaultProxy(anvil.rpc_url)
    await proxy.start()
    store = await Store.open(str(tmp_path / "settlerd.sqlite3"))
    adapter, mine = await _evm_adapter(anvil, htlc_address, proxy, store)
    try:
        await tour("eth", adapter, mine, proxy, caplog)
    finally:
        await proxy.close()
        await store.close()


async def tour(
    chain: str,
    adapter: ChainAdapter,
    mine: Callable[[], Awaitable[None]],
    proxy: FaultProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each fault in turn on a started adapter under the daemon's supervisor and readiness check."""
    caplog.set_level(logging.INFO)
    metrics, readiness = Metrics(), Readiness()
    loop = ChainLoop(
        chain, adapter, on_failure=metrics.chain_loop_failed, backoff_start=0.2, backoff_cap=1.0,
        recovered_after=1.0,
    )  # fmt: skip
    chain_health.register({chain: adapter}, readiness, metrics, {chain: loop.health})

    async def ready() -> bool:
        return next(r for r in await readiness.run() if r.name == f"chain:{chain}").ok

    async def failing() -> bool:
        return loop.health.failing

    await adapter.start()
    task = asyncio.create_task(loop.run(), name=f"chain-{chain}")
    try:
        await until(ready, f"{chain} is ready before any fault")
        for number, fault in enumerate(Fault, start=1):
            caplog.clear()
            proxy.fault = fault
            await until(failing, f"{chain}'s loop fails on {fault}")
            assert not await ready(), f"{chain} reported ready while its loop fails on {fault}"
            await mine()  # blocks the scanner must still read once the node answers again
            proxy.fault = None
            await until(ready, f"{chain} is ready again after {fault}")
            assert not task.done(), f"the supervisor itself ended on {fault}"
            errors = [
                r
                for r in caplog.records
                if r.name == "settlerd.chains.supervisor" and r.levelno >= logging.ERROR
            ]
            assert errors and f"chain {chain}: its scanner loop failed" in errors[0].getMessage(), fault
            assert loop.health.failures >= number
            counted = metrics.registry.get_sample_value(
                "settlerd_chain_loop_failures_total", {"chain": chain}
            )
            assert counted == loop.health.failures
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await adapter.close()
