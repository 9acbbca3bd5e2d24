"""invalidateblock/reconsiderblock behave as bitcoind's: the tip goes back, mined transactions return to the
mempool, a longer branch wins; the chain survives a restart on the same datadir."""

from __future__ import annotations

import pytest
from kernelnode.testwallet import Key

from tests.fixtures.bitcoin_node import BitcoinNode

pytestmark = pytest.mark.bitcoind


async def _mine_one_payment_per_block(node: BitcoinNode, blocks: int) -> list[str]:
    txids = []
    for i in range(blocks):
        txid, _ = await node.fund(Key.from_seed(f"reorg payee {i}").address, 50_000)
        [block_hash] = await node.mine(1)
        assert txid in (await node.rpc("getblock", block_hash))["tx"]
        txids.append(txid)
    return txids


async def test_three_block_reorg_returns_transactions_to_mempool(fresh_bitcoin_node: BitcoinNode) -> None:
    node = fresh_bitcoin_node
    # Enough depth that the coinbase outputs the payments spend stay mature on the shorter chain
    # (bitcoind drops immature coinbase spends from the mempool after a reorg, and so does this node).
    await node.mine(110)
    fork_height = await node.rpc("getblockcount")
    fork_hash = await node.rpc("getbestblockhash")
    txids = await _mine_one_payment_per_block(node, 3)
    old_first = await node.rpc("getblockhash", fork_height + 1)
    old_tip = await node.rpc("getbestblockhash")

    assert await node.rpc("invalidateblock", old_first) is None
    assert await node.rpc("getbestblockhash") == fork_hash
    assert sorted(await node.rpc("getrawmempool")) == sorted(txids)
    assert (await node.rpc("getblockheader", old_tip))["confirmations"] == -1

    new_branch = await node.mine(4)
    assert await node.rpc("getblockcount") == fork_height + 4
    assert await node.rpc("getrawmempool") == []
    assert set(txids) <= set((await node.rpc("getblock", new_branch[0]))["tx"])

    # The old branch is valid again but shorter: it stays a fork.
    await node.rpc("reconsiderblock", old_first)
    assert await node.rpc("getbestblockhash") == new_branch[-1]
    tips = {t["hash"]: t["status"] for t in await node.rpc("getchaintips")}
    assert tips[old_tip] == "valid-fork"

    # Taking the new branch away leaves the old one as the most-work valid chain.
    await node.rpc("invalidateblock", new_branch[0])
    assert await node.rpc("getbestblockhash") == old_tip


async def test_reorg_helper_and_restart_keep_the_chain(fresh_bitcoin_node: BitcoinNode) -> None:
    node = fresh_bitcoin_node
    await node.mine(110)
    replaced = await node.rpc("getblockhash", 108)
    new_blocks = await node.reorg(3)
    assert len(new_blocks) == 4
    assert await node.rpc("getblockcount") == 111
    assert await node.rpc("getblockhash", 108) != replaced
    pending, _ = await node.fund(Key.from_seed("restart payee").address, 10_000)
    tip = await node.rpc("getbestblockhash")

    await node.restart()

    assert await node.rpc("getbestblockhash") == tip
    assert (await node.rpc("getblockheader", replaced))["confirmations"] == -1
    assert pending in await node.rpc("getrawmempool")
    await node.mine(1)
    assert pending in (await node.rpc("getblock", await node.rpc("getbestblockhash")))["tx"]
