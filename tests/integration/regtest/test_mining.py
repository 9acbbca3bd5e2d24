"""Mining throughput: the figure is printed (run with -s to see it), never asserted against a clock."""

from __future__ import annotations

import time

import pytest

from tests.fixtures.bitcoin_node import BitcoinNode

pytestmark = pytest.mark.bitcoind


async def test_thousand_blocks_mine(fresh_bitcoin_node: BitcoinNode) -> None:
    node = fresh_bitcoin_node
    started = time.perf_counter()
    hashes = await node.mine(1000)
    elapsed = time.perf_counter() - started
    print(f"\n{node.kind} node mined 1000 blocks in {elapsed:.2f} s ({1000 / elapsed:.0f} blocks/s)")
    assert len(set(hashes)) == 1000
    assert await node.rpc("getblockcount") == 1000
    assert await node.rpc("getbestblockhash") == hashes[-1]
    # Past two halvings (regtest halves every 150 blocks), the subsidy follows the schedule.
    block = await node.rpc("getblock", hashes[-1], 2)
    assert block["tx"][0]["vout"][0]["value"] == 50 / 2 ** (1000 // 150)
