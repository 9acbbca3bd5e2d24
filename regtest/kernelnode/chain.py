"""The active chain: Bitcoin Core's kernel decides validity and the best tip; we keep the UTXO view.

The kernel exposes no coins view, so the node keeps its own UTXO set and per-block undo records, and
follows the kernel's tip after every block (connecting/disconnecting along the fork path).
The kernel's databases live in memory and are rebuilt from the BlockStore on start-up and whenever the
set of invalidated blocks changes.
"""

from __future__ import annotations

import gc
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pbk

from .codec import Block, OutPoint, Tx, parse_block
from .store import BlockStore

MTP_SPAN = 11  # blocks in the median-time-past window (consensus)
PARSED_BLOCK_CACHE = 2_000  # parsed blocks kept in memory; the raw bytes are always at hand
MAX_SCRIPT_SIZE = 10_000  # outputs with larger scripts are unspendable and never enter the UTXO set


@dataclass(frozen=True)
class Coin:
    value: int
    script_pubkey: bytes
    height: int
    coinbase: bool


@dataclass
class BlockMeta:
    hash: bytes
    prev: bytes
    height: int
    time: int
    mtp: int = 0
    txids: list[bytes] = field(default_factory=list)


@dataclass
class TipChange:
    disconnected: list[Block]
    connected: list[Block]


class BlockRejected(Exception):
    """The kernel refused to connect a block."""


class Chain:
    def __init__(self, netdir: Path) -> None:
        self.netdir = netdir
        self.store = BlockStore(netdir)
        self._kernel_root = netdir / "kernel"
        self._generation = 0
        self._chainman: pbk.ChainstateManager | None = None
        self._last_check: str = ""
        self.meta: dict[bytes, BlockMeta] = {}
        self._blocks: dict[bytes, Block] = {}
        self.active: list[bytes] = []
        self.utxo: dict[OutPoint, Coin] = {}
        self.undo: dict[bytes, list[tuple[OutPoint, Coin]]] = {}
        self.fees: dict[bytes, list[int]] = {}
        self._start_kernel()
        genesis_entry = self._kernel_chain().block_tree_entries[0]
        assert self._chainman is not None
        genesis_raw = bytes(self._chainman.blocks[genesis_entry])
        genesis = parse_block(genesis_raw)
        self.genesis_hash: bytes = genesis.hash
        self._genesis: Block = genesis  # not in the store: the kernel makes it
        self._blocks[genesis.hash] = genesis
        self._add_meta(genesis, prev=bytes(32), height=0)
        for h in self.store.order:
            blk = parse_block(self.store.raw[h])
            self._add_meta(blk, blk.header.prev, self.meta[blk.header.prev].height + 1)
        self._replay()

    # --- kernel lifecycle ---
    def _start_kernel(self) -> None:
        self._chainman = None
        gc.collect()
        shutil.rmtree(self._kernel_root, ignore_errors=True)
        self._generation += 1
        kdir = self._kernel_root / str(self._generation)
        callbacks = pbk.ValidationInterfaceCallbacks(block_checked=self._on_block_checked)
        ctx = pbk.make_context(pbk.ChainType.REGTEST, validation_callbacks=callbacks)
        opts = pbk.ChainstateManagerOptions(ctx, str(kdir), str(kdir / "blocks"))
        opts.update_block_tree_db_in_memory(True)
        opts.update_chainstate_db_in_memory(True)
        self._callbacks = callbacks
        self._chainman = pbk.ChainstateManager(opts)

    def _on_block_checked(self, _user_data: object, _block: object, state: pbk.BlockValidationState) -> None:
        if state.validation_mode != pbk.ValidationMode.VALID:
            self._last_check = state.block_validation_result.name.lower()

    def _kernel_chain(self) -> pbk.Chain:
        assert self._chainman is not None
        return self._chainman.get_active_chain()

    def _kernel_tip(self) -> bytes:
        chain = self._kernel_chain()
        return bytes(chain.block_tree_entries[chain.height].block_hash)

    def _submit(self, raw: bytes) -> None:
        assert self._chainman is not None
        self._last_check = ""
        try:
            self._chainman.process_block(pbk.Block(raw))
        except pbk.ProcessBlockException as exc:
            raise BlockRejected(f"kernel process_block failed ({exc})") from exc

    def excluded(self) -> set[bytes]:
        """Invalidated blocks and all their descendants."""
        out: set[bytes] = set()
        for h in self.store.order:
            if h in self.store.invalidated or self.meta[h].prev in out:
                out.add(h)
        return out

    def _replay(self) -> TipChange:
        """Fresh kernel chainstate from the store, skipping invalidated branches."""
        self._start_kernel()
        skip = self.excluded()
        for h in self.store.order:
            if h not in skip:
                try:
                    self._submit(self.store.raw[h])
                except BlockRejected:
                    continue
        return self._follow_kernel()

    # --- block metadata and UTXO view ---
    def _add_meta(self, blk: Block, prev: bytes, height: int) -> None:
        m = BlockMeta(blk.hash, prev, height, blk.header.time, txids=[t.txid for t in blk.txs])
        self.meta[blk.hash] = m
        m.mtp = self._mtp_of(blk.hash)

    def _mtp_of(self, h: bytes) -> int:
        times: list[int] = []
        cur: bytes | None = h
        while cur is not None and cur in self.meta and len(times) < MTP_SPAN:
            times.append(self.meta[cur].time)
            m = self.meta[cur]
            cur = m.prev if m.height > 0 else None
        return sorted(times)[len(times) // 2]

    def block(self, h: bytes) -> Block:
        blk = self._blocks.get(h)
        if blk is None:
            if h == self.genesis_hash:
                return self._genesis
            blk = parse_block(self.store.raw[h])
            if len(self._blocks) > PARSED_BLOCK_CACHE:
                self._blocks.clear()
            self._blocks[h] = blk
        return blk

    @property
    def height(self) -> int:
        return len(self.active) - 1

    @property
    def tip(self) -> bytes:
        return self.active[-1]

    def tip_mtp(self) -> int:
        return self.meta[self.tip].mtp

    def in_active(self, h: bytes) -> bool:
        m = self.meta.get(h)
        return m is not None and m.height < len(self.active) and self.active[m.height] == h

    def _follow_kernel(self) -> TipChange:
        target = self._kernel_tip()
        path: list[bytes] = []
        cur = target
        fork_height = -1  # before genesis: nothing connected yet
        while not self.in_active(cur):
            path.append(cur)
            if self.meta[cur].height == 0:
                break
            cur = self.meta[cur].prev
        else:
            fork_height = self.meta[cur].height
        change = TipChange([], [])
        while self.height > fork_height:
            change.disconnected.append(self._disconnect())
        for h in reversed(path):
            change.connected.append(self._connect(h))
        return change

    def _connect(self, h: bytes) -> Block:
        blk = self.block(h)
        height = self.meta[h].height
        undo: list[tuple[OutPoint, Coin]] = []
        fees: list[int] = []
        for tx in blk.txs:
            coinbase = tx.is_coinbase()
            if not coinbase:
                spent = 0
                for txin in tx.vin:
                    coin = self.utxo.pop(txin.prevout)
                    undo.append((txin.prevout, coin))
                    spent += coin.value
                fees.append(spent - sum(o.value for o in tx.vout))
            if height == 0:
                continue  # the genesis coinbase is not spendable
            txid = tx.txid
            for n, out in enumerate(tx.vout):
                spk = out.script_pubkey
                if (spk and spk[0] == 0x6A) or len(spk) > MAX_SCRIPT_SIZE:
                    continue
                self.utxo[OutPoint(txid, n)] = Coin(out.value, spk, height, coinbase)
        self.undo[h] = undo
        self.fees[h] = fees
        self.active.append(h)
        return blk

    def _disconnect(self) -> Block:
        h = self.active.pop()
        blk = self.block(h)
        for tx in blk.txs:
            txid = tx.txid
            for n in range(len(tx.vout)):
                self.utxo.pop(OutPoint(txid, n), None)
        for outpoint, coin in self.undo.pop(h):
            self.utxo[outpoint] = coin
        self.fees.pop(h, None)
        return blk

    # --- mutations ---
    def add_block(self, blk: Block) -> TipChange:
        """Process a block built on our tip; it is stored and reported only if the kernel connects it."""
        raw = blk.serialize()
        prev = self.meta.get(blk.header.prev)
        if prev is None:
            raise BlockRejected("prev-blk-not-found")
        self._submit(raw)
        if self._kernel_tip() != blk.hash:
            reason = self._last_check or "not connected"
            raise BlockRejected(f"block {blk.hash[::-1].hex()} rejected by the kernel: {reason}")
        self._blocks[blk.hash] = blk
        self._add_meta(blk, blk.header.prev, prev.height + 1)
        self.store.add(blk.hash, raw)
        return self._follow_kernel()

    def invalidate(self, h: bytes) -> TipChange:
        self.store.invalidated.add(h)
        self.store.save_invalidated()
        return self._replay()

    def reconsider(self, h: bytes) -> TipChange:
        """Clear invalidity of the block, its ancestors and descendants, as bitcoind does."""
        related = {h}
        cur = h
        while cur in self.meta and self.meta[cur].height > 0:
            cur = self.meta[cur].prev
            related.add(cur)
        for b in self.store.order:
            if self.meta[b].prev in related:
                related.add(b)
        self.store.invalidated -= related
        self.store.save_invalidated()
        return self._replay()

    def find_tx(self, block_hash: bytes, txid: bytes) -> Tx | None:
        if txid not in self.meta[block_hash].txids:
            return None
        for tx in self.block(block_hash).txs:
            if tx.txid == txid:
                return tx
        return None

    def mtp_at_height(self, height: int) -> int:
        return self.meta[self.active[max(height, 0)]].mtp

    def close(self) -> None:
        self.store.close()
        self._chainman = None
        gc.collect()
        shutil.rmtree(self._kernel_root, ignore_errors=True)
