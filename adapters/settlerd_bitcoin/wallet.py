"""The daemon's own funds: P2WPKH addresses from the seed, the UTXO set the scanner finds, coin selection
and the funding transaction of an HTLC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .htlc import p2wpkh_script_pubkey
from .keys import CHANGE, RECEIVE, KeyChain, SigningKey
from .txbuild import (
    P2WPKH_DUST,
    P2WSH_DUST,
    OutPoint,
    Spendable,
    Tx,
    TxIn,
    TxOut,
    sign_p2wpkh_inputs,
)

GAP_LIMIT = 20  # unused addresses watched past the last used one on each branch (BIP44's usual gap)
COINBASE_MATURITY = 100  # consensus: a coinbase output is spendable 100 blocks after its block
TX_OVERHEAD_VB = 11  # version, locktime, counts and the segwit marker, rounded up
P2WPKH_INPUT_VB = 68  # outpoint, sequence, empty scriptSig and a worst-case signature + key witness
P2WPKH_OUTPUT_VB = 31
P2WSH_OUTPUT_VB = 43


class InsufficientFunds(RuntimeError):
    pass


@dataclass(slots=True)
class Utxo:
    outpoint: OutPoint
    value: int
    branch: int  # RECEIVE or CHANGE
    index: int
    height: int  # block height, 0 while unconfirmed
    coinbase: bool = False
    spent_height: int | None = None  # set once spent in a block; kept until that block is deep

    def to_json(self) -> dict[str, Any]:
        return {
            "outpoint": str(self.outpoint),
            "value": self.value,
            "branch": self.branch,
            "index": self.index,
            "height": self.height,
            "coinbase": self.coinbase,
            "spent_height": self.spent_height,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Utxo:
        return cls(
            OutPoint.parse(d["outpoint"]),
            d["value"],
            d["branch"],
            d["index"],
            d["height"],
            d["coinbase"],
            d["spent_height"],
        )

    def mature(self, tip: int) -> bool:
        if self.height <= 0:
            return False
        return not self.coinbase or tip - self.height + 1 >= COINBASE_MATURITY


@dataclass(frozen=True, slots=True)
class Selection:
    coins: tuple[Utxo, ...]
    fee: int
    change: int  # 0 when the remainder was too small for an output and went to the fee


def select_coins(utxos: list[Utxo], amount: int, fee_rate: float, payment_vb: int) -> Selection:
    """Coins paying ``amount`` plus fee at ``fee_rate`` sat/vB.

    Prefers the single smallest coin that covers the payment (fewer inputs, less linkage), else adds
    coins largest first. A change output below the dust limit is dropped and its value goes to the fee.
    """

    def fee_for(n_inputs: int, with_change: bool) -> int:
        vb = (
            TX_OVERHEAD_VB
            + n_inputs * P2WPKH_INPUT_VB
            + payment_vb
            + (P2WPKH_OUTPUT_VB if with_change else 0)
        )
        return math.ceil(vb * fee_rate)

    def settle(coins: list[Utxo]) -> Selection | None:
        total = sum(c.value for c in coins)
        change = total - amount - fee_for(len(coins), True)
        if change >= P2WPKH_DUST:
            return Selection(tuple(coins), fee_for(len(coins), True), change)
        if total - amount >= fee_for(len(coins), False):
            return Selection(tuple(coins), total - amount, 0)
        return None

    for coin in sorted(utxos, key=lambda c: c.value):
        single = settle([coin])
        if single is not None:
            return single
    chosen: list[Utxo] = []
    for coin in sorted(utxos, key=lambda c: c.value, reverse=True):
        chosen.append(coin)
        found = settle(chosen)
        if found is not None:
            return found
    have = sum(c.value for c in utxos)
    raise InsufficientFunds(
        f"the wallet has {have} sat spendable, not enough for {amount} sat plus fees at {fee_rate} sat/vB; "
        "send funds to a wallet address (settlerd's receive address) and wait for a confirmation"
    )


class Wallet:
    """UTXOs on the wallet's addresses, as reported by the scanner, and the keys to spend them."""

    def __init__(self, keys: KeyChain) -> None:
        self.keys = keys
        self.utxos: dict[str, Utxo] = {}
        self.reserved: set[str] = set()  # outpoints spent by signed transactions not yet seen on chain
        self.next_index = {RECEIVE: 0, CHANGE: 0}
        self.scripts: dict[bytes, tuple[int, int]] = {}
        self._derived: set[tuple[int, int]] = set()
        self._extend()

    def _extend(self) -> None:
        """Watch GAP_LIMIT unused addresses past the next index on both branches."""
        for branch, next_index in self.next_index.items():
            for index in range(next_index + GAP_LIMIT):
                if (branch, index) in self._derived:
                    continue
                self.scripts[self.script(branch, index)] = (branch, index)
                self._derived.add((branch, index))

    def key(self, branch: int, index: int) -> SigningKey:
        return self.keys.wallet_key(branch, index)

    def script(self, branch: int, index: int) -> bytes:
        return p2wpkh_script_pubkey(self.key(branch, index).pubkey_hash)

    def take_index(self, branch: int) -> int:
        """A fresh address index on ``branch``; the caller persists the wallet state before using it."""
        index = self.next_index[branch]
        self.next_index[branch] = index + 1
        self._extend()
        return index

    def mark_used(self, branch: int, index: int) -> None:
        if index >= self.next_index[branch]:
            self.next_index[branch] = index + 1
            self._extend()

    def spendable(self, tip: int) -> list[Utxo]:
        return [
            u
            for key, u in self.utxos.items()
            if u.spent_height is None and key not in self.reserved and u.mature(tip)
        ]

    def balance(self, tip: int) -> int:
        return sum(u.value for u in self.spendable(tip))

    def build_funding(
        self, script_pubkey: bytes, amount: int, fee_rate: float, tip: int
    ) -> tuple[Tx, Selection]:
        """A signed transaction paying ``amount`` to ``script_pubkey`` (an HTLC), change to a fresh address.

        The coins are reserved so the next funding does not spend them again.
        """
        if amount < P2WSH_DUST:
            raise ValueError(f"an HTLC of {amount} sat is below the dust limit ({P2WSH_DUST} sat)")
        selection = select_coins(self.spendable(tip), amount, fee_rate, P2WSH_OUTPUT_VB)
        outputs = [TxOut(amount, script_pubkey)]
        if selection.change:
            outputs.append(TxOut(selection.change, self.script(CHANGE, self.take_index(CHANGE))))
        # Locktime at the tip discourages fee sniping, as Bitcoin Core's wallet does.
        unsigned = Tx(tuple(TxIn(c.outpoint) for c in selection.coins), tuple(outputs), locktime=tip)
        coins = [Spendable(c.outpoint, c.value, self.key(c.branch, c.index)) for c in selection.coins]
        tx = sign_p2wpkh_inputs(unsigned, coins)
        self.reserved.update(str(c.outpoint) for c in selection.coins)
        return tx, selection

    def release(self, tx: Tx) -> None:
        """``tx`` will never be broadcast: the coins it spends may fund the next lock."""
        self.reserved.difference_update(str(i.prevout) for i in tx.inputs)

    def to_json(self) -> dict[str, Any]:
        return {
            "utxos": [u.to_json() for u in self.utxos.values()],
            "next_index": [self.next_index[RECEIVE], self.next_index[CHANGE]],
        }

    def load_json(self, d: dict[str, Any]) -> None:
        self.utxos = {str(u.outpoint): u for u in map(Utxo.from_json, d["utxos"])}
        self.next_index = {RECEIVE: d["next_index"][0], CHANGE: d["next_index"][1]}
        self._extend()
