"""The node: chain, mempool and mining wired together; every operation the RPC layer offers."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from .chain import BlockRejected, Chain, TipChange
from .codec import OutPoint, Tx, parse_tx
from .mempool import Mempool, Reject
from .miner import COINBASE_WEIGHT_RESERVE, MAX_BLOCK_WEIGHT, build_block

MEMPOOL_FILE = "mempool.json"
MAX_TIP_AGE = 24 * 60 * 60  # bitcoind leaves initial block download once the tip is younger than this


@dataclass
class NodeOptions:
    datadir: Path
    min_relay_feerate: int = 1000  # sat/kvB


class Node:
    def __init__(self, options: NodeOptions) -> None:
        self.options = options
        self.netdir = options.datadir / "regtest"
        self.netdir.mkdir(parents=True, exist_ok=True)
        self.chain = Chain(self.netdir)
        self.mempool = Mempool(self.chain, options.min_relay_feerate)
        self.started = time.time()
        self._left_ibd = False
        self._load_mempool()

    # --- chain changes ---
    def _apply(self, change: TipChange) -> None:
        for blk in change.connected:
            self.mempool.block_connected(blk)
        if change.disconnected:
            returning = [
                tx for blk in reversed(change.disconnected) for tx in blk.txs if not tx.is_coinbase()
            ]
            self.mempool.resubmit(returning)

    def mine(self, count: int, payout_spk: bytes) -> list[bytes]:
        mined = []
        for _ in range(count):
            entries = self.mempool.block_candidates(MAX_BLOCK_WEIGHT - COINBASE_WEIGHT_RESERVE)
            blk = build_block(
                self.chain.tip,
                self.chain.height + 1,
                self.chain.tip_mtp(),
                [e.tx for e in entries],
                sum(e.fee for e in entries),
                payout_spk,
            )
            self._apply(self.chain.add_block(blk))
            mined.append(blk.hash)
        return mined

    def mine_with(self, txs: list[Tx], payout_spk: bytes) -> bytes:
        """generateblock: exactly these transactions, in this order (raises BlockRejected if invalid)."""
        made: dict[OutPoint, int] = {}
        fees = 0
        for tx in txs:
            value_in = 0
            for txin in tx.vin:
                coin = self.chain.utxo.get(txin.prevout)
                value_in += coin.value if coin is not None else made.get(txin.prevout, 0)
            fees += value_in - sum(o.value for o in tx.vout)
            for n, out in enumerate(tx.vout):
                made[OutPoint(tx.txid, n)] = out.value
        blk = build_block(
            self.chain.tip, self.chain.height + 1, self.chain.tip_mtp(), txs, max(fees, 0), payout_spk
        )
        self._apply(self.chain.add_block(blk))
        return blk.hash

    def invalidate(self, block_hash: bytes) -> None:
        self._apply(self.chain.invalidate(block_hash))

    def reconsider(self, block_hash: bytes) -> None:
        self._apply(self.chain.reconsider(block_hash))

    def in_ibd(self) -> bool:
        if not self._left_ibd and self.chain.meta[self.chain.tip].time >= time.time() - MAX_TIP_AGE:
            self._left_ibd = True
        return not self._left_ibd

    # --- persistence ---
    def _load_mempool(self) -> None:
        path = self.netdir / MEMPOOL_FILE
        if not path.exists():
            return
        for raw in json.loads(path.read_text()):
            try:
                self.mempool.accept(parse_tx(bytes.fromhex(raw)), allow_replacement=False)
            except (Reject, ValueError):
                continue

    def close(self) -> None:
        path = self.netdir / MEMPOOL_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([e.tx.serialize().hex() for e in self.mempool.entries.values()]))
        tmp.replace(path)
        self.chain.close()


__all__ = ["BlockRejected", "Node", "NodeOptions"]
