"""The adapter's own loop keeps our transactions moving (S3): a dropped one is broadcast again, one priced
out by the base fee is replaced at the same nonce with higher fees, journaled before it is broadcast (S4).

These tests stop anvil's automining and push its base fee up, so they run on an anvil of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from settlerd_evm.adapter import EvmAdapter, EvmSettings
from settlerd_evm.deploy import deploy_contract
from settlerd_evm.keeper import BUMP_AFTER_BLOCKS, URGENT_BUMP_AFTER_BLOCKS, URGENT_CLAIM_S

from settlerd.adapters import SignedTx
from settlerd.chains.supervisor import ChainLoop
from settlerd.store import TxStatus
from settlerd.store.store import Store
from tests.fixtures.anvil import Anvil, run_anvil
from tests.fixtures.timeouts import TIMEOUT_FACTOR

from .conftest import HOUR, terms_for

pytestmark = pytest.mark.anvil
ETH_AMOUNT = 10**17
GWEI = 10**9
# Far above what a transaction signed at anvil's starting base fee (1 gwei) offers, below the fee cap.
HIGH_BASE_FEE = 50 * GWEI
POLL_S = 0.05
WAIT_POLLS = int(600 * TIMEOUT_FACTOR)  # a bound so a broken loop fails the test instead of hanging it


@pytest.fixture(scope="module")
def own_anvil() -> Iterator[Anvil]:
    with run_anvil(private=True) as node:  # the base fee and automine are changed under it
        yield node


@pytest.fixture(scope="module")
async def own_htlc(own_anvil: Anvil) -> str:
    return await deploy_contract(own_anvil.rpc_url, own_anvil.keys[0])


class JournalSpy:
    """The store as an adapter sees it; notes whether the node knew each replacement when it was journaled."""

    def __init__(self, store: Store, anvil: Anvil) -> None:
        self.store = store
        self.anvil = anvil
        self.replacements: list[tuple[SignedTx, str, bool]] = []

    async def get_cursor(self, chain: str, key: str) -> str | None:
        return await self.store.get_cursor(chain, key)

    async def put_cursor(self, chain: str, key: str, value: str) -> None:
        await self.store.put_cursor(chain, key, value)

    async def unconfirmed_txs(self, chain: str) -> list[SignedTx]:
        return await self.store.unconfirmed_txs(chain)

    async def unsent(self, chain: str) -> dict[str, bool]:
        return await self.store.unsent(chain)

    async def record_replacement(self, tx: SignedTx, replaces: str) -> None:
        known = self.anvil.rpc("eth_getTransactionByHash", tx.txid) is not None
        self.replacements.append((tx, replaces, known))
        await self.store.record_replacement(tx, replaces)


@pytest.fixture
async def journal(tmp_path: Path, own_anvil: Anvil) -> AsyncIterator[JournalSpy]:
    store = await Store.open(str(tmp_path / "settlerd.sqlite"))
    async with store.write() as w:
        await w.insert_swap("s1", role="participant", status="locked", counterparty="peer", terms={})
    yield JournalSpy(store, own_anvil)
    await store.close()


@pytest.fixture
async def adapters(own_anvil: Anvil, own_htlc: str) -> AsyncIterator[Callable[..., Awaitable[EvmAdapter]]]:
    """Started adapters whose supervised loop polls every POLL_S; anvil automines again once the test ends."""
    started: list[EvmAdapter] = []
    loops: list[asyncio.Task[None]] = []

    async def make(key: str, store: JournalSpy) -> EvmAdapter:
        settings = {
            "rpc_url": own_anvil.rpc_url, "contract": own_htlc, "private_key": key,
            "chain_id": own_anvil.chain_id, "finality_depth": 2, "poll_interval_s": POLL_S,
        }  # fmt: skip
        adapter = EvmAdapter(EvmSettings.from_mapping(settings), store)
        started.append(adapter)
        await adapter.start()
        loops.append(asyncio.create_task(ChainLoop(adapter.name, adapter).run(), name="keeper-loop"))
        return adapter

    own_anvil.rpc("evm_setAutomine", True)
    yield make
    for loop in loops:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    for adapter in started:
        await adapter.close()
    own_anvil.rpc("evm_setAutomine", True)


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(WAIT_POLLS):
        if await check():
            return
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"gave up waiting until {what}")


async def mine(anvil: Anvil, adapter: EvmAdapter) -> int:
    """One block; returns once the adapter's own loop has acted on it."""
    anvil.rpc("evm_mine")
    tip = int(str(anvil.rpc("eth_blockNumber")), 16)

    async def acted() -> bool:
        return adapter.keeper.height == tip

    await until(acted, f"the adapter acted on block {tip}")
    return tip


async def journal_and_broadcast(journal: JournalSpy, adapter: EvmAdapter, tx: SignedTx, leg: int) -> None:
    """What the engine does (S4): persist under the swap and leg, then broadcast once."""
    async with journal.store.write() as w:
        await w.record_signed_tx(tx, "s1", leg)
    await adapter.broadcast(tx)
    async with journal.store.write() as w:
        await w.mark_tx(tx.txid, TxStatus.BROADCAST, chain=tx.chain)


def in_pool(anvil: Anvil, txid: str) -> bool:
    found: Any = anvil.rpc("eth_getTransactionByHash", txid)
    return found is not None and found["blockNumber"] is None


async def test_a_claim_priced_out_by_the_base_fee_is_bumped_journaled_first_and_mined(
    own_anvil: Anvil, adapters: Callable[..., Awaitable[EvmAdapter]], journal: JournalSpy
) -> None:
    alice = await adapters(own_anvil.keys[0], journal)
    bob = await adapters(own_anvil.keys[1], journal)
    preimage, terms = await terms_for(alice.w3, "ETH", ETH_AMOUNT, alice.address, bob.address)
    lock = await alice.build_lock(terms)
    await journal_and_broadcast(journal, alice, lock, 1)
    assert (await alice.w3.eth.wait_for_transaction_receipt(lock.txid))["status"] == 1

    own_anvil.rpc("evm_setAutomine", False)
    claim = await bob.build_claim(terms, str(lock.htlc_id), preimage)
    assert claim.meta["max_fee_per_gas"] < HIGH_BASE_FEE
    await mine(own_anvil, bob)  # the keeper has seen the lock's block: it first meets the claim at the next
    await journal_and_broadcast(journal, bob, claim, 2)
    assert in_pool(own_anvil, claim.txid)

    # Blocks whose base fee is above what the claim offers: anvil evicts it and refuses it back, so only
    # a replacement at higher fees can get it mined.
    blocks = 0
    while not journal.replacements:
        assert blocks <= BUMP_AFTER_BLOCKS, "no replacement after BUMP_AFTER_BLOCKS blocks unmined"
        own_anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(HIGH_BASE_FEE))
        await mine(own_anvil, bob)
        blocks += 1
        assert not in_pool(own_anvil, claim.txid)  # evicted, and its rebroadcasts refused
        assert own_anvil.rpc("eth_getTransactionReceipt", claim.txid) is None
    assert blocks == 1 + BUMP_AFTER_BLOCKS  # first seen unmined at the first block, bumped three later

    ((bump, replaced, known_when_journaled),) = journal.replacements
    assert replaced == claim.txid and not known_when_journaled  # journaled before it was broadcast (S4)
    assert bump.nonce == claim.nonce and bump.purpose == "claim" and bump.txid != claim.txid
    assert bump.meta["max_fee_per_gas"] > HIGH_BASE_FEE
    assert bump.htlc_id == claim.htlc_id == lock.htlc_id and bump.meta["timelock"] == terms.timelock
    assert in_pool(own_anvil, bump.txid)

    before = await bob.w3.eth.get_balance(bob.address)
    await mine(own_anvil, bob)
    receipt = await bob.w3.eth.get_transaction_receipt(bump.txid)
    assert receipt["status"] == 1
    fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert await bob.w3.eth.get_balance(bob.address) == before + ETH_AMOUNT - fee

    # The journal holds both versions under the swap's leg 2 until the engine settles the mined one; the
    # nonce is spent, so later blocks neither rebroadcast nor bump either of them again.
    for _ in range(BUMP_AFTER_BLOCKS + 1):
        await mine(own_anvil, bob)
    records = [r for r in await journal.store.signed_txs(swap_id="s1") if r.purpose == "claim"]
    assert [(r.txid, r.leg, r.replaces) for r in records] == [
        (claim.txid, 2, None),
        (bump.txid, 2, claim.txid),
    ]
    assert len(journal.replacements) == 1


async def test_a_dropped_lock_is_broadcast_again_on_the_next_block(
    own_anvil: Anvil, adapters: Callable[..., Awaitable[EvmAdapter]], journal: JournalSpy
) -> None:
    alice = await adapters(own_anvil.keys[2], journal)
    carol = Account.from_key(own_anvil.keys[3]).address
    _, terms = await terms_for(alice.w3, "ETH", ETH_AMOUNT, alice.address, carol)
    own_anvil.rpc("evm_setAutomine", False)
    await mine(own_anvil, alice)
    lock = await alice.build_lock(terms)
    await journal_and_broadcast(journal, alice, lock, 1)
    own_anvil.rpc("anvil_dropTransaction", lock.txid)
    assert own_anvil.rpc("eth_getTransactionByHash", lock.txid) is None

    await mine(own_anvil, alice)  # an empty block: the lock was dropped, and the keeper sends it again
    assert in_pool(own_anvil, lock.txid)
    await mine(own_anvil, alice)
    assert (await alice.w3.eth.get_transaction_receipt(lock.txid))["status"] == 1
    assert journal.replacements == []


async def test_a_claim_near_its_timelock_is_bumped_after_one_block(
    own_anvil: Anvil, adapters: Callable[..., Awaitable[EvmAdapter]], journal: JournalSpy
) -> None:
    alice = await adapters(own_anvil.keys[0], journal)
    bob = await adapters(own_anvil.keys[1], journal)
    preimage, terms = await terms_for(alice.w3, "ETH", ETH_AMOUNT, alice.address, bob.address)
    lock = await alice.build_lock(terms)
    await journal_and_broadcast(journal, alice, lock, 1)
    assert (await alice.w3.eth.wait_for_transaction_receipt(lock.txid))["status"] == 1

    own_anvil.rpc("evm_setAutomine", False)
    own_anvil.rpc("evm_increaseTime", HOUR - URGENT_CLAIM_S // 2)
    await mine(own_anvil, bob)
    claim = await bob.build_claim(terms, str(lock.htlc_id), preimage)
    await journal_and_broadcast(journal, bob, claim, 2)

    blocks = 0
    while not journal.replacements:
        assert blocks <= URGENT_BUMP_AFTER_BLOCKS, "an urgent claim waited as long as any other"
        own_anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(HIGH_BASE_FEE))
        await mine(own_anvil, bob)
        blocks += 1
    assert blocks == 1 + URGENT_BUMP_AFTER_BLOCKS < 1 + BUMP_AFTER_BLOCKS
    ((bump, replaced, known_when_journaled),) = journal.replacements
    assert replaced == claim.txid and not known_when_journaled
    await mine(own_anvil, bob)
    assert (await bob.w3.eth.get_transaction_receipt(bump.txid))["status"] == 1
