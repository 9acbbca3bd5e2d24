"""A stranger spams 1-wei locks on our HTLC contract behind a provider that caps eth_getLogs results.

The scanner must still catch up and see our lock: it filters by our events and watched hashlocks on the
node, so unrelated spam costs nothing, and splits a range the provider refuses, so spam that copies our
(public) hashlock only costs more queries. Before, it asked for 2,000 unfiltered blocks and stalled on
the refusal for good.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from eth_abi import encode
from eth_account import Account
from settlerd_evm import contract as c
from settlerd_evm.deploy import deploy_contract
from settlerd_evm.scanner import NodeFault, Scanner
from web3 import AsyncHTTPProvider, AsyncWeb3

from settlerd.adapters import ChainEvent, HtlcTerms, Locked
from settlerd.store.store import Store
from tests.fixtures.anvil import Anvil
from tests.integration.evm.conftest import new_secret, send, store, w3
from tests.integration.evm.rpc_proxy import RpcProxy

__all__ = ["store", "w3"]

pytestmark = pytest.mark.anvil

CAP = 20  # logs per eth_getLogs answer, as a provider would cap them (Infura: 10,000)
SPAM_PER_TX = 5  # copies of our hashlock per stranger's transaction: one block never exceeds the cap
SPAM_TXS = 12
UNRELATED_SPAM = 3 * CAP  # stranger's locks with their own hashlocks, in one block
OUR_AMOUNT = 10**15
LOCK_MANY = c.selector("lockEthMany((address,uint256,bytes32,uint256)[])")


def address(key: str) -> str:
    return str(Account.from_key(key).address)


async def lock_many(w3: AsyncWeb3, key: str, htlc: str, swaps: list[tuple[str, int, bytes, int]]) -> None:
    data = LOCK_MANY + encode(["(address,uint256,bytes32,uint256)[]"], [swaps])
    value = sum(s[1] for s in swaps)
    receipt = await send(w3, key, {"to": htlc, "data": data, "value": value, "gas": 20_000_000})
    assert receipt["status"] == 1


@pytest.fixture
async def proxy(anvil: Anvil) -> AsyncIterator[RpcProxy]:
    p = RpcProxy(anvil.rpc_url, cap=CAP)
    await p.start()
    yield p
    await p.close()


async def test_spam_on_our_contract_does_not_starve_the_scanner(
    anvil: Anvil, w3: AsyncWeb3, store: Store, proxy: RpcProxy
) -> None:
    htlc = await deploy_contract(anvil.rpc_url, anvil.keys[0])
    alice, bob, stranger = anvil.keys[0], address(anvil.keys[1]), anvil.keys[3]
    start = int(await w3.eth.block_number) + 1
    now = int((await w3.eth.get_block("latest"))["timestamp"])
    timelock = now + 3600
    _, hashlock = new_secret()

    # While our scanner is away: the stranger's unrelated locks, our lock, then copies of our hashlock.
    junk = [(address(stranger), 1, secrets.token_bytes(32), timelock) for _ in range(UNRELATED_SPAM)]
    await lock_many(w3, stranger, htlc, junk)
    receipt = await send(
        w3, alice, {"to": htlc, "data": c.lock_eth(bob, hashlock, timelock), "value": OUR_AMOUNT}
    )
    assert receipt["status"] == 1
    for i in range(SPAM_TXS):
        copies = [(bob, 1, hashlock, timelock + 1 + i * SPAM_PER_TX + j) for j in range(SPAM_PER_TX)]
        await lock_many(w3, stranger, htlc, copies)

    events: list[ChainEvent] = []
    scanner_w3 = AsyncWeb3(AsyncHTTPProvider(proxy.url))
    try:
        scanner = Scanner(
            scanner_w3, "evm", htlc, store, events.append, finality_depth=2, backfill_blocks=50_000
        )
        await scanner.resume(start)
        scanner.watch(HtlcTerms("evm", "ETH", OUR_AMOUNT, hashlock, bob, address(alice), timelock))
        await scanner.poll()
    finally:
        await scanner_w3.provider.disconnect()

    (locked,) = [e for e in events if isinstance(e, Locked)]
    assert locked.amount == OUR_AMOUNT and locked.txid == "0x" + bytes(receipt["transactionHash"]).hex()
    assert scanner.height == await w3.eth.block_number
    # The copies of our hashlock passed the node's filter and overflowed the cap: the range was split.
    assert proxy.refused > 0
    assert all(q.get("topics") for q in proxy.log_queries), "every query is filtered by topic"


GARBAGE: list[tuple[str, Any]] = [
    ("eth_getLogs", "not a list"),
    ("eth_getLogs", [{"blockNumber": "0x1"}]),
    ("eth_getLogs", [42]),
    ("eth_blockNumber", {"height": 1}),
    ("eth_getBlockByNumber", {"number": "0x1"}),
]


@pytest.mark.parametrize(("method", "answer"), GARBAGE)
async def test_garbage_from_the_node_is_a_fault_and_skips_no_block(
    anvil: Anvil, w3: AsyncWeb3, store: Store, proxy: RpcProxy, method: str, answer: Any
) -> None:
    htlc = await deploy_contract(anvil.rpc_url, anvil.keys[0])
    alice, bob = anvil.keys[0], address(anvil.keys[1])
    start = int(await w3.eth.block_number) + 1
    timelock = int((await w3.eth.get_block("latest"))["timestamp"]) + 3600
    _, hashlock = new_secret()
    terms = HtlcTerms("evm", "ETH", OUR_AMOUNT, hashlock, bob, address(alice), timelock)
    receipt = await send(
        w3, alice, {"to": htlc, "data": c.lock_eth(bob, hashlock, timelock), "value": OUR_AMOUNT}
    )

    events: list[ChainEvent] = []
    scanner_w3 = AsyncWeb3(AsyncHTTPProvider(proxy.url))
    try:
        scanner = Scanner(
            scanner_w3, "evm", htlc, store, events.append, finality_depth=2, backfill_blocks=50_000
        )
        await scanner.resume(start)
        scanner.watch(terms)
        proxy.garbage[method] = answer
        for _ in range(2):
            with pytest.raises(NodeFault):
                await scanner.poll()
            assert scanner.height == start - 1, "no block is taken as scanned on a garbage answer"
        del proxy.garbage[method]
        await scanner.poll()
    finally:
        await scanner_w3.provider.disconnect()
    assert [e.txid for e in events if isinstance(e, Locked)] == [
        "0x" + bytes(receipt["transactionHash"]).hex()
    ]
