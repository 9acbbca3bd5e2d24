"""An in-memory chain with HTLCs: blocks, a mempool, balances, fees and reorgs, driven by the test.

It plays the node: ``FakeChainAdapter`` instances (one per daemon, each with its own account) talk to one
``FakeChain`` the way real adapters talk to bitcoind or an EVM node. Nothing moves unless the test says so:
``mine(n)`` makes blocks, ``reorg(depth)`` replaces the last ones, ``evict`` drops a transaction from the
mempool. Block ``h`` is stamped ``genesis_time + h * block_interval``, so every time conversion is exact.

Consensus is Bitcoin's where the chains differ: a claim is valid for as long as the HTLC is unspent, a
refund only in a block above its timelock (a block height), and an HTLC is named ``<lock txid>:0``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

TxKind = Literal["lock", "claim", "refund"]

# Timelocks are block heights; Bitcoin reads nLockTime values from here on as unix times, which this
# chain does not know.
MAX_TIMELOCK = 500_000_000
DEFAULT_GENESIS = datetime(2030, 1, 1, tzinfo=UTC)


class TxRejected(RuntimeError):
    """The fake node refused a transaction, as a node answers ``sendrawtransaction``."""


@dataclass(frozen=True, slots=True)
class FakeTx:
    """A signed transaction as the fake chain reads it; ``raw`` of a ``SignedTx`` is its JSON."""

    kind: TxKind
    signer: str
    fee: int  # native units, paid by the signer
    serial: int  # tells apart transactions that would otherwise be identical
    asset: str = ""
    amount: int = 0
    hashlock: str = ""  # hex
    recipient: str = ""
    sender: str = ""
    timelock: int = 0
    htlc_id: str = ""  # spent by a claim or refund
    preimage: str = ""  # hex, on a claim

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> FakeTx:
        try:
            return cls(**json.loads(raw))
        except (ValueError, TypeError) as exc:
            raise TxRejected(f"not a transaction of the fake chain: {exc}") from None

    @property
    def txid(self) -> str:
        return hashlib.sha256(self.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Htlc:
    htlc_id: str
    lock: FakeTx
    height: int
    spent_by: str | None = None  # txid of the claim or refund


@dataclass(frozen=True, slots=True)
class Block:
    height: int
    hash: str
    time: datetime
    txs: tuple[FakeTx, ...]


@dataclass
class _Ledger:
    """Balances and HTLCs after some sequence of transactions."""

    balances: dict[tuple[str, str], int] = field(default_factory=dict)
    htlcs: dict[str, Htlc] = field(default_factory=dict)

    def copy(self) -> _Ledger:
        return _Ledger(dict(self.balances), dict(self.htlcs))

    def apply(self, tx: FakeTx, native: str, height: int) -> None:
        """Apply ``tx`` as if included in block ``height``, or raise TxRejected leaving self unchanged."""
        debits: list[tuple[str, str, int]] = [(tx.signer, native, tx.fee)]
        credits: list[tuple[str, str, int]] = []
        if tx.kind == "lock":
            if tx.signer != tx.sender:
                raise TxRejected("a lock is signed by its sender")
            debits.append((tx.signer, tx.asset, tx.amount))
        else:
            htlc = self.htlcs.get(tx.htlc_id)
            if htlc is None:
                raise TxRejected(f"no HTLC {tx.htlc_id}")
            if htlc.spent_by is not None:
                raise TxRejected(f"HTLC {tx.htlc_id} is already spent by {htlc.spent_by}")
            lock = htlc.lock
            if tx.kind == "claim":
                if tx.signer != lock.recipient:
                    raise TxRejected("only the HTLC's recipient may claim it")
                if hashlib.sha256(bytes.fromhex(tx.preimage)).hexdigest() != lock.hashlock:
                    raise TxRejected("the preimage does not match the hashlock")
            else:
                if tx.signer != lock.sender:
                    raise TxRejected("only the HTLC's sender may refund it")
                if height <= lock.timelock:
                    raise TxRejected(f"non-final: the refund is valid above block {lock.timelock}")
            credits.append((tx.signer, lock.asset, lock.amount))
        balances = dict(self.balances)
        for account, asset, amount in credits:
            balances[(account, asset)] = balances.get((account, asset), 0) + amount
        for account, asset, amount in debits:
            left = balances.get((account, asset), 0) - amount
            if left < 0:
                raise TxRejected(f"{account} lacks {-left} {asset}")
            balances[(account, asset)] = left
        self.balances = balances
        if tx.kind == "lock":
            self.htlcs[f"{tx.txid}:0"] = Htlc(f"{tx.txid}:0", tx, height)
        else:
            self.htlcs[tx.htlc_id] = replace(self.htlcs[tx.htlc_id], spent_by=tx.txid)


class FakeChain:
    def __init__(
        self,
        name: str = "fake",
        *,
        native_asset: str = "FAKE",
        tokens: Iterable[str] = (),
        block_interval: timedelta = timedelta(minutes=1),
        genesis_time: datetime = DEFAULT_GENESIS,
        fee_rate: int = 100,
    ) -> None:
        self.name = name
        self.native_asset = native_asset
        self.assets = frozenset({native_asset, *tokens})
        self.block_interval = block_interval
        self.genesis_time = genesis_time
        self.fee_rate = fee_rate  # the fee an adapter signs with now
        self.min_fee = 0  # transactions paying less stay in the mempool
        self._allocations: list[tuple[str, str, int]] = []
        self._blocks = [Block(0, _hash("genesis", name), genesis_time, ())]
        self._mempool: dict[str, FakeTx] = {}
        self._ledger = _Ledger()
        self._serial = 0
        self._branch = 0
        self._listeners: list[asyncio.Event] = []

    # reading

    @property
    def height(self) -> int:
        return self._blocks[-1].height

    @property
    def time(self) -> datetime:
        """The tip's timestamp."""
        return self._blocks[-1].time

    def block(self, height: int) -> Block:
        return self._blocks[height]

    def block_time(self, height: int) -> datetime:
        """When block ``height`` is (or will be) mined: blocks come exactly one interval apart."""
        return self.genesis_time + height * self.block_interval

    @property
    def mempool(self) -> list[FakeTx]:
        return list(self._mempool.values())

    def balance(self, account: str, asset: str) -> int:
        """Confirmed balance."""
        return self._ledger.balances.get((account, asset), 0)

    def pending_balance(self, account: str, asset: str) -> int:
        """Balance once the mempool is mined: what a new transaction may spend."""
        return self._pending().balances.get((account, asset), 0)

    def htlc(self, htlc_id: str, *, pending: bool = False) -> Htlc | None:
        return (self._pending() if pending else self._ledger).htlcs.get(htlc_id)

    def find_tx(self, txid: str) -> tuple[FakeTx, int | None] | None:
        """A transaction and the height of its block (None while in the mempool), or None if unknown."""
        if txid in self._mempool:
            return self._mempool[txid], None
        for block in self._blocks:
            for tx in block.txs:
                if tx.txid == txid:
                    return tx, block.height
        return None

    # accounts

    @staticmethod
    def account(seed: str) -> str:
        """A deterministic address for ``seed``: 0x and 40 lower-case hex digits."""
        return "0x" + hashlib.sha256(seed.encode()).hexdigest()[:40]

    def fund(self, account: str, asset: str, amount: int) -> None:
        """Credit ``account`` from outside the chain's history (survives any reorg)."""
        if asset not in self.assets:
            raise ValueError(f"{self.name} carries no asset {asset!r}")
        self._allocations.append((account, asset, amount))
        self._rebuild()

    # what adapters do

    def next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def submit(self, tx: FakeTx) -> None:
        """Accept ``tx`` into the mempool, or raise TxRejected; a known transaction is accepted again."""
        if self.find_tx(tx.txid) is not None:
            return
        self._pending().apply(tx, self.native_asset, self.height + 1)
        self._mempool[tx.txid] = tx
        self._changed()

    def subscribe(self, wakeup: asyncio.Event) -> None:
        """``wakeup`` is set whenever blocks or the mempool change."""
        self._listeners.append(wakeup)

    def unsubscribe(self, wakeup: asyncio.Event) -> None:
        if wakeup in self._listeners:
            self._listeners.remove(wakeup)

    # what the test does

    def mine(self, n: int = 1) -> list[Block]:
        """Mine ``n`` blocks; each takes what the mempool holds that pays ``min_fee`` and is valid."""
        mined = []
        for _ in range(n):
            height = self.height + 1
            txs = []
            for tx in sorted(self._mempool.values(), key=lambda t: -t.fee):
                if tx.fee < self.min_fee:
                    continue
                try:
                    self._ledger.apply(tx, self.native_asset, height)
                except TxRejected:
                    del self._mempool[tx.txid]  # a conflict that lost the race
                    continue
                del self._mempool[tx.txid]
                txs.append(tx)
            parent = self._blocks[-1].hash
            block = Block(
                height, _hash(parent, str(height), str(self._branch), *(t.txid for t in txs)),
                self.block_time(height), tuple(txs),
            )  # fmt: skip
            self._blocks.append(block)
            mined.append(block)
        self._changed()
        return mined

    def mine_until(self, when: datetime) -> list[Block]:
        """Mine until the tip's time is at or past ``when``."""
        missing = -(-(when - self.time) // self.block_interval)
        return self.mine(max(0, missing))

    def reorg(self, depth: int, *, drop: Iterable[str] = (), length: int | None = None) -> list[Block]:
        """Replace the last ``depth`` blocks by ``length`` new ones (default ``depth + 1``).

        Their transactions go back to the mempool and into the new branch, except the txids in ``drop``,
        which vanish as if double-spent; what depended on them is evicted when it no longer fits.
        """
        if not 0 < depth <= self.height:
            raise ValueError(f"cannot reorg {depth} blocks of a chain at height {self.height}")
        dropped = set(drop)
        removed = self._blocks[-depth:]
        del self._blocks[-depth:]
        returning = [t for b in removed for t in b.txs if t.txid not in dropped]
        self._mempool = {t.txid: t for t in returning} | {
            txid: t for txid, t in self._mempool.items() if txid not in dropped
        }
        self._branch += 1
        self._rebuild()
        return self.mine(depth + 1 if length is None else length)

    def evict(self, txid: str) -> None:
        """Drop a transaction from the mempool, as a node restarting or trimming its mempool does."""
        self._mempool.pop(txid, None)
        self._changed()

    # internals

    def _pending(self) -> _Ledger:
        ledger = self._ledger.copy()
        for tx in self._mempool.values():
            # Kept valid by submit and _rebuild; one that fell out (fees) is left to the next block.
            with contextlib.suppress(TxRejected):
                ledger.apply(tx, self.native_asset, self.height + 1)
        return ledger

    def _rebuild(self) -> None:
        """Recompute the ledger from the allocations and the blocks; evict what no longer fits."""
        ledger = _Ledger()
        for account, asset, amount in self._allocations:
            ledger.balances[(account, asset)] = ledger.balances.get((account, asset), 0) + amount
        for block in self._blocks:
            for tx in block.txs:
                ledger.apply(tx, self.native_asset, block.height)
        self._ledger = ledger
        pending = ledger.copy()
        for txid, tx in list(self._mempool.items()):
            try:
                pending.apply(tx, self.native_asset, self.height + 1)
            except TxRejected:
                del self._mempool[txid]  # its lock vanished, or a refund is no longer final
        self._changed()

    def _changed(self) -> None:
        for wakeup in self._listeners:
            wakeup.set()


def _hash(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()
