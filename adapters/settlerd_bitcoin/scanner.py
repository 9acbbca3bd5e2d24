"""Block scanner: follows the best chain one block at a time and matches it against an in-memory index.

One ``getblock <hash> 2`` per block. Every output is looked up by scriptPubKey and every input by outpoint
in dicts, so a block costs the same whether ten or ten thousand swaps are live. Reorgs are found by
comparing the node's block hashes with the last ``KEEP_BLOCKS`` hashes kept in the store; everything
recorded above the fork point is undone and reported as Reorged before the new branch is read.

The state is saved as one cursor per watched script and per funding, plus a small header (tip, recent
hashes, wallet): a save writes the header and what changed since the last one, in one transaction, so
the bytes written per block follow the block, not the number of swaps watched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from settlerd.adapters import (
    AdapterStore,
    ChainEvent,
    Claimed,
    HtlcFact,
    HtlcTerms,
    Locked,
    Refunded,
    Reorged,
    Tip,
)

from .htlc import Htlc, parse_htlc
from .records import Funding, Spend, revealed_preimage, sats
from .rpc import RpcClient, RpcError
from .txbuild import OutPoint
from .wallet import Utxo, Wallet

log = logging.getLogger(__name__)

KEEP_BLOCKS = 144  # about a day of block hashes: deeper reorgs have never happened on mainnet since 2013
STATE_CURSOR = "scanner"  # the header; before the state was split, the whole state
HTLC_CURSOR = "scanner.htlc."  # + scriptPubKey hex: the witness script
FUNDING_CURSOR = "scanner.funding."  # + outpoint: the funding and its spend
SAVE_EVERY = 50  # blocks between state saves during a catch-up; at the tip every block is saved
RPC_INVALID_PARAMETER = -8  # getblockhash: height out of range
RPC_INVALID_ADDRESS_OR_KEY = -5  # getrawtransaction: the transaction left the mempool meanwhile


class ReorgTooDeep(RuntimeError):
    pass


class Scanner:
    def __init__(
        self,
        chain: str,
        rpc: RpcClient,
        store: AdapterStore,
        wallet: Wallet,
        emit: Callable[[ChainEvent], None],
        *,
        birthday: int,
        finality_depth: int,
    ) -> None:
        self.chain = chain
        self.rpc = rpc
        self.store = store
        self.wallet = wallet
        self.emit = emit
        self.birthday = birthday
        self.finality_depth = finality_depth
        self.tip = -1
        self.hashes: dict[int, str] = {}
        self.htlcs: dict[bytes, Htlc] = {}  # watched scriptPubKey -> HTLC
        self.fundings: dict[str, Funding] = {}  # outpoint -> funding of a watched HTLC
        # By hashlock, so unwatch() costs what it drops, not what is watched.
        self._scripts_of: dict[bytes, set[bytes]] = {}
        self._fundings_of: dict[bytes, set[str]] = {}
        self._unmined = 0  # fundings without a mined spend: whether the mempool is worth polling
        self._dirty: set[str] = set()  # cursor keys changed since the last save
        self.maturing: set[str] = set()  # fundings whose depth or spend depth is still reported
        # Inputs of the mempool's transactions, so a spend seen before its HTLC's funding was mined (or
        # before that block was read) is matched the moment the funding is recorded.
        self.mempool_txs: dict[str, list[str]] = {}  # txid -> outpoints it spends
        self.mempool_spends: dict[str, tuple[str, list[str]]] = {}  # outpoint -> (txid, witness)

    # index

    def watch(self, terms: HtlcTerms) -> Htlc:
        htlc = Htlc(
            terms.hashlock, bytes.fromhex(terms.recipient), bytes.fromhex(terms.sender), terms.timelock
        )
        spk = htlc.script_pubkey  # computed once: blocks are matched against the dict's keys
        if spk not in self.htlcs:
            self._index_script(spk, htlc)
            self._dirty.add(HTLC_CURSOR + spk.hex())
        self._replay({spk})
        return htlc

    def _index_script(self, spk: bytes, htlc: Htlc) -> None:
        self.htlcs[spk] = htlc
        self._scripts_of.setdefault(htlc.hashlock, set()).add(spk)

    def _add_funding(self, f: Funding) -> None:
        self.fundings[f.outpoint] = f
        self._fundings_of.setdefault(f.hashlock, set()).add(f.outpoint)
        self._unmined += _unmined(f.spend)
        self._dirty.add(FUNDING_CURSOR + f.outpoint)

    def _drop_funding(self, op: str) -> None:
        f = self.fundings.pop(op)
        ops = self._fundings_of.get(f.hashlock)
        if ops is not None:
            ops.discard(op)
            if not ops:
                del self._fundings_of[f.hashlock]
        self._unmined -= _unmined(f.spend)
        self.maturing.discard(op)
        self._dirty.add(FUNDING_CURSOR + op)

    def _set_spend(self, f: Funding, spend: Spend | None) -> None:
        self._unmined += _unmined(spend) - _unmined(f.spend)
        f.spend = spend
        self._dirty.add(FUNDING_CURSOR + f.outpoint)

    def _replay(self, scripts: set[bytes]) -> None:
        # Watching again after a restart replays what is already known, so the engine recomputes from it.
        hashlocks = {self.htlcs[spk].hashlock for spk in scripts if spk in self.htlcs}
        for op in [op for hashlock in hashlocks for op in self._fundings_of.get(hashlock, ())]:
            funding = self.fundings[op]
            if funding.script_pubkey in scripts:
                funding.reported = -1
                if funding.spend is not None:
                    funding.spend.reported = -1
                self.maturing.add(funding.outpoint)
                self._dirty.add(FUNDING_CURSOR + funding.outpoint)
                self._report(funding)

    def unwatch(self, hashlock: bytes) -> None:
        for spk in self._scripts_of.pop(hashlock, ()):
            del self.htlcs[spk]
            self._dirty.add(HTLC_CURSOR + spk.hex())
        for op in list(self._fundings_of.get(hashlock, ())):
            self._drop_funding(op)

    # persistence

    async def load(self) -> None:
        raw = await self.store.get_cursor(self.chain, STATE_CURSOR)
        if raw is None:
            self.tip = self.birthday - 1
            if self.tip >= 0:
                self.hashes[self.tip] = await self.rpc.call("getblockhash", self.tip)
            return
        state = json.loads(raw)
        watched_before_load = set(self.htlcs)
        self.tip = state["tip"]
        self.hashes = {int(h): v for h, v in state["hashes"].items()}
        legacy = "htlcs" in state  # saved whole by an older version: the next save splits it
        if legacy:
            scripts, fundings = state["htlcs"], state["fundings"]
        else:
            scripts = list((await self.store.get_cursors(self.chain, HTLC_CURSOR)).values())
            saved = await self.store.get_cursors(self.chain, FUNDING_CURSOR)
            fundings = [json.loads(value) for value in saved.values()]
        # The index is restored before any block is read, so nothing mined while the daemon was down
        # (or between its last save and a crash) is missed for want of the engine's watch() calls.
        for script in scripts:
            htlc = parse_htlc(bytes.fromhex(script))
            self._index_script(htlc.script_pubkey, htlc)
        for f in fundings:
            self._add_funding(Funding.from_json(f))
        if legacy:
            self._dirty |= {HTLC_CURSOR + spk.hex() for spk in self.htlcs}
        else:
            self._dirty -= {FUNDING_CURSOR + op for op in self.fundings}
        self.maturing = set(state["maturing"]) & set(self.fundings)
        self.wallet.load_json(state["wallet"])
        # The engine may watch before the saved state is loaded (so catch-up matches its swaps): what
        # was already known of those HTLCs is replayed now, as a watch after loading would.
        self._replay(watched_before_load)

    async def save(self) -> None:
        """The header and every script and funding changed since the last save, in one transaction."""
        header = {
            "tip": self.tip,
            "hashes": self.hashes,
            "maturing": sorted(self.maturing),
            "wallet": self.wallet.to_json(),
        }
        # Taken before the write: what changes while it is under way (a watch) is saved the next time.
        dirty, self._dirty = self._dirty, set()
        changes: dict[str, str | None] = {STATE_CURSOR: _json(header)}
        for key in dirty:
            if key.startswith(HTLC_CURSOR):
                htlc = self.htlcs.get(bytes.fromhex(key.removeprefix(HTLC_CURSOR)))
                changes[key] = None if htlc is None else htlc.witness_script.hex()
            else:
                funding = self.fundings.get(key.removeprefix(FUNDING_CURSOR))
                changes[key] = None if funding is None else _json(funding.to_json())
        try:
            await self.store.put_cursors(self.chain, changes)
        except BaseException:
            self._dirty |= dirty
            raise

    # following the chain

    async def _best(self) -> tuple[int, str]:
        info = await self.rpc.call("getblockchaininfo")
        return int(info["blocks"]), str(info["bestblockhash"])

    async def sync(self) -> bool:
        """Catch up with the node's best chain. Returns whether the tip moved."""
        moved = False
        best, best_hash = await self._best()
        while best_hash != self.hashes.get(self.tip):
            moved = True
            if best <= self.tip:
                await self._rewind(best)
                best, best_hash = await self._best()
                continue
            try:
                block_hash = await self.rpc.call("getblockhash", self.tip + 1)
            except RpcError as exc:
                if exc.code != RPC_INVALID_PARAMETER:
                    raise
                best, best_hash = await self._best()  # the chain got shorter since we asked
                continue
            block = await self.rpc.call("getblock", block_hash, 2)
            if self.tip in self.hashes and block.get("previousblockhash") != self.hashes[self.tip]:
                await self._rewind(self.tip)
                best, best_hash = await self._best()
                continue
            self._apply(block)
            # While catching up, save every SAVE_EVERY blocks rather than every block: a crash replays at
            # most that many blocks, and the events they give again are ones the engine already handles.
            if self.tip >= best or self.tip % SAVE_EVERY == 0:
                await self.save()
            if self.tip >= best:
                best, best_hash = await self._best()
        return moved

    async def _rewind(self, start: int) -> None:
        height = min(start, self.tip)
        while height in self.hashes:
            if await self.rpc.call("getblockhash", height) == self.hashes[height]:
                break
            height -= 1
        else:
            if height >= 0:
                raise ReorgTooDeep(
                    f"{self.chain}: the node's chain forks below the {KEEP_BLOCKS} block hashes kept "
                    f"(checked down to height {height + 1}); stop settlerd and investigate the node"
                )
        log.warning("%s: reorganisation, blocks above %d left the best chain", self.chain, height)
        self._undo_above(height)
        await self.save()

    def _undo_above(self, fork: int) -> None:
        for op, f in list(self.fundings.items()):
            if f.spend is not None and f.spend.height > fork:
                if f.spend.reported >= 0:
                    self._emit_reorg(f, f.spend.fact, f.spend.txid, fork)
                self._set_spend(f, None)
                self.maturing.add(op)
            if f.height > fork:
                if f.reported >= 0:
                    self._emit_reorg(f, HtlcFact.LOCKED, op.split(":")[0], fork)
                self._drop_funding(op)
            elif f.reported > fork - f.height + 1:
                f.reported = fork - f.height + 1
                self.maturing.add(op)
                self._dirty.add(FUNDING_CURSOR + op)
        for op, u in list(self.wallet.utxos.items()):
            if u.height > fork:
                del self.wallet.utxos[op]
            elif u.spent_height is not None and u.spent_height > fork:
                # Unspent again, but the spending transaction was ours and is back in the mempool or
                # will be rebroadcast from the journal: keep the coin out of the next funding.
                u.spent_height = None
                self.wallet.reserved.add(op)
        self.hashes = {h: v for h, v in self.hashes.items() if h <= fork}
        self.tip = fork
        # Disconnected transactions return to the mempool under the same txids: look at them again.
        self.mempool_txs.clear()
        self.mempool_spends.clear()

    def _emit_reorg(self, f: Funding, undone: HtlcFact, txid: str, fork: int) -> None:
        self.emit(Reorged(self.chain, fork, self.hashes.get(fork), f.outpoint, f.hashlock, txid, undone))

    def _apply(self, block: dict[str, Any]) -> None:
        height = int(block["height"])
        block_hash = str(block["hash"])
        block_time = int(block["time"])
        for tx in block["tx"]:
            self._apply_tx(tx, height, block_hash, block_time)
        self.hashes[height] = block_hash
        self.hashes.pop(height - KEEP_BLOCKS, None)
        self.tip = height
        for op, u in list(self.wallet.utxos.items()):
            if u.spent_height is not None and u.spent_height <= height - KEEP_BLOCKS:
                del self.wallet.utxos[op]
        for op in sorted(self.maturing):
            self._report(self.fundings[op])
        self.emit(Tip(self.chain, height, block_hash, _time(block_time)))

    def _apply_tx(self, tx: dict[str, Any], height: int, block_hash: str, block_time: int) -> None:
        txid = tx["txid"]
        coinbase = False
        for vin in tx["vin"]:
            if "coinbase" in vin:
                coinbase = True
                continue
            op = f"{vin['txid']}:{vin['vout']}"
            funding = self.fundings.get(op)
            if funding is not None:
                self._record_spend(funding, txid, vin.get("txinwitness", []), height, block_hash)
            utxo = self.wallet.utxos.get(op)
            if utxo is not None:
                utxo.spent_height = height
                self.wallet.reserved.discard(op)
        for vout in tx["vout"]:
            spk = bytes.fromhex(vout["scriptPubKey"]["hex"])
            op = f"{txid}:{vout['n']}"
            htlc = self.htlcs.get(spk)
            if htlc is not None and op not in self.fundings:
                funding = Funding(op, spk, htlc.hashlock, sats(vout["value"]), height, block_hash, block_time)
                self._add_funding(funding)
                self.maturing.add(op)
                pending = self.mempool_spends.get(op)
                if pending is not None:
                    self._record_spend(funding, pending[0], pending[1], 0, None)
            path = self.wallet.scripts.get(spk)
            if path is not None:
                self.wallet.utxos[op] = Utxo(
                    OutPoint.parse(op), sats(vout["value"]), path[0], path[1], height, coinbase
                )
                self.wallet.mark_used(*path)

    def _record_spend(
        self, funding: Funding, txid: str, witness: list[str], height: int, block_hash: str | None
    ) -> None:
        previous = funding.spend
        if previous is not None and previous.height > 0:
            return
        preimage = revealed_preimage(witness, funding.hashlock)
        reported = previous.reported if previous is not None and previous.txid == txid else -1
        self._set_spend(funding, Spend(txid, preimage, height, block_hash, reported))
        self.maturing.add(funding.outpoint)

    def _found(self, f: Funding) -> HtlcTerms:
        # A funding is kept only while its script is watched: unwatch() drops both together.
        htlc = self.htlcs[f.script_pubkey]
        return HtlcTerms(
            chain=self.chain,
            asset="BTC",
            amount=f.amount,
            hashlock=htlc.hashlock,
            recipient=htlc.claim_pubkey.hex(),
            sender=htlc.refund_pubkey.hex(),
            timelock=htlc.locktime,
        )

    def _report(self, f: Funding) -> None:
        """Report the funding's and its spend's depth until both reach the finality depth."""
        depth = self.tip - f.height + 1
        txid = f.outpoint.split(":")[0]
        if depth > f.reported:
            f.reported = depth
            self._dirty.add(FUNDING_CURSOR + f.outpoint)
            self.emit(
                Locked(
                    self.chain, f.height, f.block_hash, f.outpoint, f.hashlock, txid, f.amount, depth,
                    self._found(f),
                )
            )  # fmt: skip
        s = f.spend
        if s is not None:
            spend_depth = self.tip - s.height + 1 if s.height > 0 else 0
            if spend_depth > s.reported:
                s.reported = spend_depth
                self._dirty.add(FUNDING_CURSOR + f.outpoint)
                self.emit(self._spend_event(f, s, spend_depth))
        # Final and unspent, or final and spent deep enough: nothing to report until a spend shows up.
        if f.reported >= self.finality_depth and (s is None or s.reported >= self.finality_depth):
            self.maturing.discard(f.outpoint)

    def _spend_event(self, f: Funding, s: Spend, depth: int) -> Claimed | Refunded:
        # A spend seen only in the mempool is reported at the tip, with no block and no confirmation.
        at = (self.chain, s.height or self.tip, s.block_hash, f.outpoint, f.hashlock, s.txid)
        if s.preimage is not None:
            return Claimed(*at, s.preimage, depth)
        return Refunded(*at, depth)

    # mempool

    def has_unspent_fundings(self) -> bool:
        # A spend only in the mempool can still be replaced, by a claim revealing the secret: keep looking.
        return self._unmined > 0

    async def poll_mempool(self) -> None:
        """Look at new mempool transactions for spends of watched HTLCs: a claim reveals the preimage."""
        current = set(await self.rpc.call("getrawmempool"))
        for gone in set(self.mempool_txs) - current:
            for op in self.mempool_txs.pop(gone):
                if self.mempool_spends.get(op, ("",))[0] == gone:
                    del self.mempool_spends[op]
        for txid in current - set(self.mempool_txs):
            try:
                tx = await self.rpc.call("getrawtransaction", txid, True)
            except RpcError as exc:
                if exc.code == RPC_INVALID_ADDRESS_OR_KEY:
                    continue
                raise
            spent = []
            for vin in tx["vin"]:
                if "coinbase" in vin:
                    continue
                op = f"{vin['txid']}:{vin['vout']}"
                witness = vin.get("txinwitness", [])
                spent.append(op)
                self.mempool_spends[op] = (txid, witness)
                funding = self.fundings.get(op)
                # A spend replacing another one still in the mempool (the initiator's claim outbidding our
                # refund) is reported too: its preimage is public now, not once it is mined.
                if funding is not None and (funding.spend is None or funding.spend.height == 0):
                    self._record_spend(funding, txid, witness, 0, None)
                    self._report(funding)
            self.mempool_txs[txid] = spent


def _unmined(spend: Spend | None) -> int:
    return 1 if spend is None or spend.height == 0 else 0


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _time(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
