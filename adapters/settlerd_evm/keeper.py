"""Keeping our own transactions moving until they are mined (S3).

On every new block the adapter goes through the journal's unconfirmed transactions from its account,
grouped by nonce. A nonce below the account's mined transaction count is spent: whichever version was
mined, the engine settles the journal from the chain events, so nothing more is sent for it. What the
engine journaled but never broadcast is left to it, to send after its last checks (S1, S2), until it is
abandoned (its swap ended) or, for a claim, its timelock passed: then a no-op takes its nonce. For every
other nonce the newest version (each replacement is journaled after what it
replaces) is broadcast again, which is harmless when the node has it and brings it back when the node
dropped it. Once the newest version has waited ``BUMP_AFTER_BLOCKS`` blocks, a replacement at the same
nonce with higher fees is signed, journaled (S4) and only then broadcast.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from web3.exceptions import Web3RPCError

from settlerd.adapters import AdapterStore, Purpose, SignedTx

from .fees import FeeCapReached

if TYPE_CHECKING:
    from .adapter import EvmAdapter

log = logging.getLogger(__name__)

# Priced at twice the base fee plus a tip, a transaction is normally mined in the next block; three blocks
# without it means the base fee outran it or the node lost it, and every bump costs at least 12.5% more.
BUMP_AFTER_BLOCKS = 3
# After its timelock a claim reverts and the sender may refund: this close to it, a claim bumps every block.
URGENT_CLAIM_S = 600
URGENT_BUMP_AFTER_BLOCKS = 1


class Keeper:
    def __init__(self, adapter: EvmAdapter, store: AdapterStore) -> None:
        self._adapter = adapter
        self._store = store
        self._waiting_since: dict[str, int] = {}  # txid -> first block at which we saw it unmined
        self._bumped_at: dict[int, int] = {}  # nonce -> block of its last replacement
        self._capped: set[str] = set()  # txids whose bump hit the fee cap, said once each
        self.height: int | None = None  # the last block this keeper acted on

    async def step(self, tip: int) -> None:
        """Rebroadcast and bump what is due at block ``tip``; once per block, whatever the poll rate."""
        if tip == self.height:
            return
        a = self._adapter
        # What the engine has not sent is its to send first, after its last checks: a claim sent from here
        # once its leg's refund opened would hand the counterparty s (S1), and a lock sent while the engine
        # refuses it would sit on chain with no swap watching it, never refunded (S2).
        journal = await self._store.unconfirmed_txs(a.name)
        unsent = await self._store.unsent(a.name)  # read second: see ``AdapterStore``
        mine = [
            tx
            for tx in journal
            if tx.nonce is not None and str(tx.meta.get("from", "")).lower() == a.address.lower()
        ]
        newest: dict[int, SignedTx] = {}
        if mine:
            mined = int(await a.w3.eth.get_transaction_count(a.address, "latest"))
            for tx in mine:
                if tx.nonce is not None and tx.nonce >= mined:
                    newest[tx.nonce] = tx
        waiting = {tx.txid for tx in newest.values()}
        self._waiting_since = {t: h for t, h in self._waiting_since.items() if t in waiting}
        self._bumped_at = {n: h for n, h in self._bumped_at.items() if n in newest}
        timestamp = int((await a.w3.eth.get_block(tip))["timestamp"]) if newest else 0
        for nonce, tx in sorted(newest.items()):
            if tx.txid in unsent:
                await self._cancel_if_abandoned(tx, unsent[tx.txid], timestamp)
            else:
                await self._keep(nonce, tx, tip, timestamp)
        self.height = tip

    async def _cancel_if_abandoned(self, tx: SignedTx, abandoned: bool, timestamp: int) -> None:
        """A transaction the engine journaled and never sent is the engine's to send, after its last checks
        (S1, S2). Once its swap ended (``abandoned``) the engine never sends it, and a claim past its
        timelock can only revert, with the secret in its calldata: a no-op takes its nonce instead, or
        the nonce would be a gap that blocks every later transaction of the account."""
        timelock = tx.meta.get("timelock")
        expired = tx.purpose is Purpose.CLAIM and timelock is not None and timestamp >= int(timelock)
        if not (abandoned or expired):
            return
        a = self._adapter
        cancel = await a.build_cancel(tx)
        await self._store.record_replacement(cancel, tx.txid)
        log.warning(
            "%s: %s %s was never sent and %s; no-op %s takes its nonce %s",
            a.name, tx.purpose, tx.txid, "its swap ended" if abandoned else "its timelock passed",
            cancel.txid, tx.nonce,
        )  # fmt: skip
        try:
            await a.broadcast(cancel)
        except Web3RPCError as exc:
            # Journaled: the next block broadcasts it again as the newest version of this nonce.
            log.warning("%s: broadcast of no-op %s refused: %s", a.name, cancel.txid, exc)

    async def _keep(self, nonce: int, tx: SignedTx, tip: int, timestamp: int) -> None:
        a = self._adapter
        since = self._waiting_since.setdefault(tx.txid, tip)
        try:
            await a.broadcast(tx)
        except Web3RPCError as exc:
            # Underpriced now, or the node refuses it for another reason: a bump below may cure it.
            log.info("%s: rebroadcast of %s %s refused: %s", a.name, tx.purpose, tx.txid, exc)
        if tip - since < self._patience(tx, timestamp) or self._bumped_at.get(nonce) == tip:
            return
        try:
            bump = await a.build_bump(tx)
        except FeeCapReached as exc:
            if tx.txid not in self._capped:
                self._capped.add(tx.txid)
                log.warning("%s: %s %s (nonce %d) is stuck: %s", a.name, tx.purpose, tx.txid, nonce, exc)
            return
        await self._store.record_replacement(bump, tx.txid)
        self._bumped_at[nonce] = tip
        self._waiting_since[bump.txid] = tip
        log.info(
            "%s: %s %s unmined for %d blocks, replaced by %s at %d wei per gas",
            a.name, tx.purpose, tx.txid, tip - since, bump.txid, bump.meta["max_fee_per_gas"],
        )  # fmt: skip
        try:
            await a.broadcast(bump)
        except Web3RPCError as exc:
            # Journaled: the next block broadcasts it again as the newest version of this nonce.
            log.warning("%s: broadcast of replacement %s refused: %s", a.name, bump.txid, exc)

    @staticmethod
    def _patience(tx: SignedTx, timestamp: int) -> int:
        timelock = tx.meta.get("timelock")
        if (
            tx.purpose is Purpose.CLAIM
            and timelock is not None
            and int(timelock) - timestamp <= URGENT_CLAIM_S
        ):
            return URGENT_BUMP_AFTER_BLOCKS
        return BUMP_AFTER_BLOCKS
