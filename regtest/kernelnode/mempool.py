"""Mempool: accepts a transaction only if it could go into the next block, with Core 28's full-RBF rules.

Reject reasons and their order follow Bitcoin Core's MemPoolAccept (PreChecks, ReplacementChecks,
PolicyScriptChecks), so callers see bitcoind's texts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .chain import Chain, Coin
from .codec import Block, OutPoint, Tx, hash_hex
from .scriptcheck import verify_inputs

COINBASE_MATURITY = 100  # consensus: a coinbase output is spendable 100 blocks after its block
LOCKTIME_THRESHOLD = 500_000_000  # below: a block height, at or above: a unix time
SEQUENCE_FINAL = 0xFFFFFFFF
SEQUENCE_DISABLE_FLAG = 1 << 31
SEQUENCE_TYPE_FLAG = 1 << 22
SEQUENCE_MASK = 0xFFFF
SEQUENCE_GRANULARITY = 9  # time-based relative locks count units of 512 seconds
MAX_MONEY = 21_000_000 * 100_000_000
MAX_REPLACEMENT_CANDIDATES = 100  # Core's limit on transactions one replacement may evict
DEFAULT_MIN_RELAY_FEERATE = 1000  # sat/kvB, bitcoind's -minrelaytxfee default
DEFAULT_INCREMENTAL_FEERATE = 1000  # sat/kvB, bitcoind's -incrementalrelayfee default


def format_money(sats: int) -> str:
    """Core's FormatMoney: 8 decimals, trailing zeros trimmed down to two."""
    sign = "-" if sats < 0 else ""
    q, r = divmod(abs(sats), 100_000_000)
    text = f"{sign}{q}.{r:08d}"
    while text.endswith("0") and len(text.split(".")[1]) > 2:
        text = text[:-1]
    return text


def format_feerate(sat_per_kvb: int) -> str:
    q, r = divmod(sat_per_kvb, 100_000_000)
    return f"{q}.{r:08d} BTC/kvB"


def fee_for(feerate_sat_kvb: int, vsize: int) -> int:
    return -(-feerate_sat_kvb * vsize // 1000)


class Reject(Exception):
    """A transaction refused by the mempool; `kind` selects the RPC error code."""

    MISSING = "missing-inputs"  # -> RPC_TRANSACTION_ERROR (-25)
    CONFLICT = "conflict"
    INVALID = "invalid"  # -> RPC_TRANSACTION_REJECTED (-26)

    def __init__(self, reason: str, debug: str = "", kind: str = INVALID) -> None:
        super().__init__(reason)
        self.reason = reason
        self.debug = debug
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.reason}, {self.debug}" if self.debug else self.reason


@dataclass
class Entry:
    tx: Tx
    txid: bytes
    wtxid: bytes
    fee: int
    vsize: int
    weight: int
    time: int
    height: int
    parents: set[bytes] = field(default_factory=set)

    @property
    def feerate(self) -> int:
        return self.fee * 1000 // self.vsize


@dataclass
class Verdict:
    tx: Tx
    fee: int
    vsize: int
    evict: set[bytes]


class Mempool:
    def __init__(self, chain: Chain, min_relay_feerate: int = DEFAULT_MIN_RELAY_FEERATE) -> None:
        self.chain = chain
        self.min_relay_feerate = min_relay_feerate
        self.incremental_feerate = DEFAULT_INCREMENTAL_FEERATE
        self.entries: dict[bytes, Entry] = {}
        self.spenders: dict[OutPoint, bytes] = {}

    # --- queries ---
    def coin(self, outpoint: OutPoint) -> Coin | None:
        coin = self.chain.utxo.get(outpoint)
        if coin is not None:
            return coin
        parent = self.entries.get(outpoint.txid)
        if parent is not None and outpoint.vout < len(parent.tx.vout):
            out = parent.tx.vout[outpoint.vout]
            return Coin(out.value, out.script_pubkey, self.chain.height + 1, False)
        return None

    def children(self, txid: bytes) -> set[bytes]:
        entry = self.entries[txid]
        out = set()
        for n in range(len(entry.tx.vout)):
            spender = self.spenders.get(OutPoint(txid, n))
            if spender is not None:
                out.add(spender)
        return out

    def descendants(self, txid: bytes) -> set[bytes]:
        seen: set[bytes] = set()
        todo = [txid]
        while todo:
            cur = todo.pop()
            for child in self.children(cur):
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return seen

    def ancestors(self, txid: bytes) -> set[bytes]:
        seen: set[bytes] = set()
        todo = list(self.entries[txid].parents)
        while todo:
            cur = todo.pop()
            if cur not in seen and cur in self.entries:
                seen.add(cur)
                todo.extend(self.entries[cur].parents)
        return seen

    def signals_rbf(self, txid: bytes) -> bool:
        chain = {txid} | self.ancestors(txid)
        return any(i.sequence < SEQUENCE_FINAL - 1 for t in chain for i in self.entries[t].tx.vin)

    # --- acceptance ---
    def check(self, tx: Tx, allow_replacement: bool = True) -> Verdict:
        txid = tx.txid
        self._check_transaction(tx)
        next_height = self.chain.height + 1
        tip_mtp = self.chain.tip_mtp()
        if not self._is_final(tx, next_height, tip_mtp):
            raise Reject("non-final")
        existing = self.entries.get(txid)
        if existing is not None:
            if existing.wtxid == tx.wtxid:
                raise Reject("txn-already-in-mempool", kind=Reject.CONFLICT)
            raise Reject("txn-same-nonwitness-data-in-mempool", kind=Reject.CONFLICT)
        direct = {self.spenders[i.prevout] for i in tx.vin if i.prevout in self.spenders}
        coins: list[Coin] = []
        for txin in tx.vin:
            coin = self.coin(txin.prevout)
            if coin is None:
                if any(OutPoint(txid, n) in self.chain.utxo for n in range(len(tx.vout))):
                    raise Reject("txn-already-known", kind=Reject.CONFLICT)
                raise Reject("bad-txns-inputs-missingorspent", kind=Reject.MISSING)
            coins.append(coin)
        if not self._sequence_locks_ok(tx, coins, next_height, tip_mtp):
            raise Reject("non-BIP68-final")
        value_in = 0
        for coin in coins:
            if coin.coinbase and next_height - coin.height < COINBASE_MATURITY:
                depth = next_height - coin.height
                raise Reject(
                    "bad-txns-premature-spend-of-coinbase", f"tried to spend coinbase at depth {depth}"
                )
            value_in += coin.value
        value_out = sum(o.value for o in tx.vout)
        if value_in < value_out:
            raise Reject(
                "bad-txns-in-belowout",
                f"value in ({format_money(value_in)}) < value out ({format_money(value_out)})",
            )
        fee = value_in - value_out
        vsize = tx.vsize
        required = fee_for(self.min_relay_feerate, vsize)
        if fee < required:
            raise Reject("min relay fee not met", f"{fee} < {required}")
        evict: set[bytes] = set()
        if direct:
            if not allow_replacement:
                raise Reject("txn-mempool-conflict", kind=Reject.CONFLICT)
            evict = self._replacement_checks(tx, txid, fee, vsize, direct)
        error = verify_inputs(tx, [(c.value, c.script_pubkey) for c in coins])
        if error is not None:
            raise Reject(f"mandatory-script-verify-flag-failed ({error})")
        return Verdict(tx, fee, vsize, evict)

    def accept(self, tx: Tx, allow_replacement: bool = True) -> Entry:
        verdict = self.check(tx, allow_replacement)
        for victim in verdict.evict:
            self._drop(victim)
        txid = tx.txid
        entry = Entry(
            tx=tx,
            txid=txid,
            wtxid=tx.wtxid,
            fee=verdict.fee,
            vsize=verdict.vsize,
            weight=tx.weight,
            time=int(time.time()),
            height=self.chain.height,
            parents={i.prevout.txid for i in tx.vin if i.prevout.txid in self.entries},
        )
        self.entries[txid] = entry
        for txin in tx.vin:
            self.spenders[txin.prevout] = txid
        return entry

    @staticmethod
    def _check_transaction(tx: Tx) -> None:
        if not tx.vin:
            raise Reject("bad-txns-vin-empty")
        if not tx.vout:
            raise Reject("bad-txns-vout-empty")
        total = 0
        for out in tx.vout:
            if out.value < 0:
                raise Reject("bad-txns-vout-negative")
            if out.value > MAX_MONEY:
                raise Reject("bad-txns-vout-toolarge")
            total += out.value
            if total > MAX_MONEY:
                raise Reject("bad-txns-txouttotal-toolarge")
        if len({i.prevout for i in tx.vin}) != len(tx.vin):
            raise Reject("bad-txns-inputs-duplicate")
        if tx.is_coinbase():
            raise Reject("coinbase")

    @staticmethod
    def _is_final(tx: Tx, height: int, block_time: int) -> bool:
        if tx.locktime == 0:
            return True
        limit = height if tx.locktime < LOCKTIME_THRESHOLD else block_time
        if tx.locktime < limit:
            return True
        return all(i.sequence == SEQUENCE_FINAL for i in tx.vin)

    def _sequence_locks_ok(self, tx: Tx, coins: list[Coin], next_height: int, tip_mtp: int) -> bool:
        if tx.version < 2:
            return True
        min_height = min_time = -1
        for txin, coin in zip(tx.vin, coins, strict=True):
            seq = txin.sequence
            if seq & SEQUENCE_DISABLE_FLAG:
                continue
            if seq & SEQUENCE_TYPE_FLAG:
                coin_time = self.chain.mtp_at_height(coin.height - 1)
                min_time = max(min_time, coin_time + ((seq & SEQUENCE_MASK) << SEQUENCE_GRANULARITY) - 1)
            else:
                min_height = max(min_height, coin.height + (seq & SEQUENCE_MASK) - 1)
        return min_height < next_height and min_time < tip_mtp

    def _replacement_checks(
        self, tx: Tx, txid: bytes, fee: int, vsize: int, direct: set[bytes]
    ) -> set[bytes]:
        shown = hash_hex(txid)
        evict = set(direct)
        for d in direct:
            evict |= self.descendants(d)
        if len(evict) > MAX_REPLACEMENT_CANDIDATES:
            raise Reject(
                "too many potential replacements",
                f"rejecting replacement {shown}; too many potential replacements "
                f"({len(evict)} > {MAX_REPLACEMENT_CANDIDATES})",
            )
        new_rate = fee * 1000 // vsize
        for d in direct:
            old = self.entries[d]
            if new_rate <= old.feerate:
                raise Reject(
                    "insufficient fee",
                    f"rejecting replacement {shown}; new feerate {format_feerate(new_rate)} <= "
                    f"old feerate {format_feerate(old.feerate)}",
                )
        conflict_parents = {p for d in direct for p in self.entries[d].parents}
        for j, txin in enumerate(tx.vin):
            if txin.prevout.txid in self.entries and txin.prevout.txid not in conflict_parents:
                raise Reject(
                    "replacement-adds-unconfirmed", f"replacement {shown} adds unconfirmed input, idx {j}"
                )
        ancestors: set[bytes] = set()
        for txin in tx.vin:
            if txin.prevout.txid in self.entries:
                ancestors |= {txin.prevout.txid} | self.ancestors(txin.prevout.txid)
        for a in ancestors & direct:
            raise Reject(
                "bad-txns-spends-conflicting-tx", f"{shown} spends conflicting transaction {hash_hex(a)}"
            )
        replaced_fees = sum(self.entries[e].fee for e in evict)
        if fee < replaced_fees:
            raise Reject(
                "insufficient fee",
                f"rejecting replacement {shown}, less fees than conflicting txs; "
                f"{format_money(fee)} < {format_money(replaced_fees)}",
            )
        relay = fee_for(self.incremental_feerate, vsize)
        if fee - replaced_fees < relay:
            raise Reject(
                "insufficient fee",
                f"rejecting replacement {shown}, not enough additional fees to relay; "
                f"{format_money(fee - replaced_fees)} < {format_money(relay)}",
            )
        return evict

    # --- removal and chain updates ---
    def _drop(self, txid: bytes) -> None:
        entry = self.entries.pop(txid, None)
        if entry is None:
            return
        for txin in entry.tx.vin:
            if self.spenders.get(txin.prevout) == txid:
                del self.spenders[txin.prevout]
        for child in self.entries.values():
            child.parents.discard(txid)

    def remove_with_descendants(self, txid: bytes) -> None:
        if txid not in self.entries:
            return
        for t in [txid, *self.descendants(txid)]:
            self._drop(t)

    def block_connected(self, blk: Block) -> None:
        for tx in blk.txs:
            txid = tx.txid
            if txid in self.entries:
                self._drop(txid)
            for txin in tx.vin:
                spender = self.spenders.get(txin.prevout)
                if spender is not None and spender != txid:
                    self.remove_with_descendants(spender)

    def resubmit(self, returning: list[Tx]) -> None:
        """After a reorg: re-accept the disconnected blocks' transactions, then what was already waiting."""
        waiting = [e.tx for e in self.entries.values()]
        self.entries.clear()
        self.spenders.clear()
        for tx in [*returning, *waiting]:
            try:
                self.accept(tx, allow_replacement=False)
            except Reject:
                continue

    def block_candidates(self, max_weight: int) -> list[Entry]:
        """Mempool entries in acceptance order (parents before children) that fit the weight budget."""
        chosen: list[Entry] = []
        skipped: set[bytes] = set()
        weight = 0
        for entry in self.entries.values():
            if entry.parents & skipped or weight + entry.weight > max_weight:
                skipped.add(entry.txid)
                continue
            chosen.append(entry)
            weight += entry.weight
        return chosen
