"""BitcoinAdapter: the ChainAdapter for Bitcoin, wiring the RPC client, keys, wallet, scanner and fees."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import coincurve

from settlerd.adapters import (
    AdapterConfigError,
    AdapterStore,
    ChainEvent,
    Check,
    HtlcTerms,
    Purpose,
    SignedTx,
    TimeLeft,
    TimelockBounds,
)

from . import fees
from .diagnose import diagnose as run_checks
from .htlc import Htlc, parse_htlc, segwit_address, sha256
from .keys import CHANGE, RECEIVE, KeyChain
from .records import sats
from .rpc import NodeUnavailable, RpcClient, RpcError
from .scanner import Scanner
from .settings import BitcoinSettings
from .txbuild import (
    P2WPKH_DUST,
    P2WSH_DUST,
    REFUND_SELECTOR,
    OutPoint,
    Tx,
    htlc_spend,
    htlc_spend_vsize,
    parse_tx,
)
from .wallet import Wallet

log = logging.getLogger(__name__)

BUMPS_CURSOR = "bumps"
# Spends of an HTLC race the counterparty's: they are fee-bumped, counting blocks from the first broadcast.
SPENDS = (Purpose.CLAIM, Purpose.REFUND)
RPC_VERIFY_ALREADY_IN_CHAIN = -27
# Bitcoin Core's MAX_MONEY (21 million BTC): no output can hold more, so no leg can either.
MAX_MONEY_SAT = 21_000_000 * 100_000_000
ALREADY_KNOWN = ("txn-already-in-mempool", "txn-already-known", "already in block chain")


class BitcoinAdapter:
    native_asset = "BTC"

    def __init__(self, settings: BitcoinSettings, store: AdapterStore) -> None:
        self.settings = settings
        self.name = settings.name
        self.store = store
        self.rpc = RpcClient(
            settings.rpc_url,
            settings.rpc_user,
            settings.rpc_password,
            settings.rpc_cookie_file,
            timeout=settings.rpc_timeout,
        )
        self.keys = KeyChain(settings.master_seed, settings.network.coin_type, settings.account)
        self.wallet = Wallet(self.keys)
        self.block_times = settings.block_times
        self._queue: asyncio.Queue[ChainEvent] = asyncio.Queue()
        self.scanner = Scanner(
            self.name,
            self.rpc,
            store,
            self.wallet,
            self._queue.put_nowait,
            birthday=settings.birthday_height,
            finality_depth=settings.finality_depth,
        )
        self._started = False
        self._bumps: dict[str, dict[str, Any]] = {}
        self._alerted: set[tuple[str, str]] = set()
        self._tip_moved = asyncio.Condition()
        self._maintained_tip = -1

    def __repr__(self) -> str:
        return f"BitcoinAdapter(name={self.name!r}, node={self.settings.rpc_url!r})"

    # lifecycle

    async def start(self) -> None:
        info = await self.rpc.call("getblockchaininfo")
        expected = self.settings.network.chain
        if info.get("chain") != expected:
            raise AdapterConfigError(
                f"{self.name}: the node at {self.rpc.url} runs chain {info.get('chain')!r}, the settings say "
                f"network {self.settings.network.name!r} ({expected!r}); point rpc_url at the right node"
            )
        if info.get("initialblockdownload"):
            log.warning("%s: the node is still in initial block download; events will lag", self.name)
        await self.scanner.load()
        self._bumps = json.loads(await self.store.get_cursor(self.name, BUMPS_CURSOR) or "{}")
        for tx in await self.store.unconfirmed_txs(self.name):
            if tx.purpose is Purpose.LOCK:
                self.wallet.reserved.update(str(i.prevout) for i in parse_tx(tx.raw).inputs)
        await self.scanner.sync()
        self._started = True

    async def diagnose(self) -> list[Check]:
        """Checks for ``settlerd doctor``, on an adapter that was not started (see ``diagnose.py``)."""
        return await run_checks(self)

    async def close(self) -> None:
        try:
            if self._started:
                # run() was cancelled, maybe in the middle of saving: what the scanner found since its last
                # save (a funding, a spend, the tip) is written now, or a restart would miss it.
                await self.scanner.save()
        finally:
            self._started = False
            await self.rpc.close()

    async def run(self) -> None:
        """Follow the node: new blocks, then rebroadcasts and fee bumps, then the mempool, every poll.

        Any failure ends it; the daemon restarts it with backoff, and the first pass of every run
        rebroadcasts what the journal holds, as after a restart."""
        moved = True
        while True:
            moved = await self._step(moved)
            await asyncio.sleep(self.settings.poll_interval)

    async def _step(self, moved: bool) -> bool:
        """One look at the node. Returns whether a new tip still awaits its rebroadcast pass."""
        moved = await self.scanner.sync() or moved
        if moved:
            await self.maintain()
            async with self._tip_moved:
                self._maintained_tip = self.tip
                self._tip_moved.notify_all()
        if self.scanner.has_unspent_fundings():
            await self.scanner.poll_mempool()
        return False

    async def events(self) -> AsyncIterator[ChainEvent]:
        while True:
            yield await self._queue.get()

    # time and heights

    @property
    def tip(self) -> int:
        return self.scanner.tip

    async def sync_status(self) -> tuple[int, int]:
        return self.tip, int(await self.rpc.call("getblockcount"))

    async def wait_for_tip(self, height: int) -> None:
        """Return once the block at ``height`` was read and what was due then was rebroadcast or bumped."""
        async with self._tip_moved:
            await self._tip_moved.wait_for(lambda: self._maintained_tip >= height)

    async def _read_tip(self) -> tuple[datetime, int, datetime]:
        """(asked, tip, answered): the node's best height and the moments around reading it.

        From ``asked`` on, at least ``timelock - tip`` blocks remain before a timelock opens, so earliest
        bounds count from then; from ``answered`` on, at most that many, so latest bounds count from then.
        """
        asked = datetime.now(UTC)
        tip = int(await self.rpc.call("getblockcount"))
        return asked, tip, datetime.now(UTC)

    async def timelock_for(self, deadline: datetime) -> int:
        asked, tip, _ = await self._read_tip()
        return tip + self.block_times.blocks_for((deadline - asked).total_seconds())

    async def bounds_of(self, timelock: int) -> TimelockBounds:
        # A refund with nLockTime = timelock enters the mempool once block ``timelock`` is mined.
        asked, tip, answered = await self._read_tip()
        earliest, latest = self.block_times.bounds(timelock - tip)
        return TimelockBounds(
            earliest=asked + timedelta(seconds=earliest),
            latest=max(asked, answered + timedelta(seconds=latest)),
            probability=self.block_times.probability,
        )

    async def time_left(self, timelock: int) -> TimeLeft:
        asked, tip, answered = await self._read_tip()
        earliest, latest = self.block_times.bounds(timelock - tip)
        return TimeLeft(
            earliest=timedelta(seconds=earliest),
            latest=timedelta(seconds=latest) + (answered - asked),
            probability=self.block_times.probability,
        )

    # watching

    def check_terms(self, terms: HtlcTerms) -> list[str]:
        parties = (("recipient", terms.recipient), ("sender", terms.sender))
        problems = [f"{role}: {why}" for role, key in parties if (why := _pubkey_problem(key))]
        if terms.asset != self.native_asset:
            problems.append(f"asset: {terms.asset!r} is not {self.native_asset}")
        if not P2WSH_DUST <= terms.amount <= MAX_MONEY_SAT:
            problems.append(
                f"amount: {terms.amount} sat is outside {P2WSH_DUST} (the HTLC output's dust limit) "
                f"to {MAX_MONEY_SAT} (21 million BTC)"
            )
        if not 0 < terms.timelock < LOCKTIME_THRESHOLD:
            problems.append(
                f"timelock: {terms.timelock} is not a block height (1 to {LOCKTIME_THRESHOLD - 1})"
            )
        return problems

    def canonical_asset(self, asset: str) -> str:
        if asset.upper() != self.native_asset:
            raise ValueError(f"{asset!r} is not an asset of Bitcoin chain {self.name}: it carries only BTC")
        return self.native_asset

    def watch(self, terms: HtlcTerms) -> None:
        self.scanner.watch(terms)

    def unwatch(self, hashlock: bytes) -> None:
        self.scanner.unwatch(hashlock)

    # keys and addresses

    def party(self, hashlock: bytes) -> str:
        """The public key this daemon puts in a swap's terms (claim or refund key), hex."""
        return self.keys.swap_key(hashlock).pubkey.hex()

    async def spendable(self, asset: str) -> int:
        if asset != "BTC":
            raise ValueError(f"{self.name}: the Bitcoin adapter holds only BTC, not {asset!r}")
        return self.wallet.balance(self.tip)

    async def receive_address(self) -> str:
        index = self.wallet.take_index(RECEIVE)
        await self.scanner.save()
        return self._address(self.wallet.script(RECEIVE, index))

    def _address(self, script_pubkey: bytes) -> str:
        return segwit_address(script_pubkey, self.settings.network.hrp)

    def htlc_address(self, terms: HtlcTerms) -> str:
        return self._htlc(terms).address(self.settings.network.hrp)

    def _htlc(self, terms: HtlcTerms) -> Htlc:
        return Htlc(
            terms.hashlock, bytes.fromhex(terms.recipient), bytes.fromhex(terms.sender), terms.timelock
        )

    async def fee_rate(self) -> float:
        try:
            estimate = await self.rpc.call("estimatesmartfee", self.settings.fees.conf_target)
        except RpcError as exc:
            log.info("%s: no fee estimate (%s); using the floor", self.name, exc)
            return self.settings.fees.floor
        if isinstance(estimate, dict) and estimate.get("errors"):
            # bitcoind's answer before it has fee history (always on a quiet regtest chain): not a failure.
            why = "; ".join(map(str, estimate["errors"]))
            log.debug("%s: no fee estimate yet (%s); using the floor", self.name, why)
        return self.settings.fees.from_estimate(estimate)

    # building transactions (signed, never broadcast here: the engine persists them first)

    async def build_lock(self, terms: HtlcTerms) -> SignedTx:
        htlc = self._htlc(terms)
        self._require_ours(terms.hashlock, htlc.refund_pubkey, "refund", terms)
        rate = await self.fee_rate()
        tx, selection = self.wallet.build_funding(htlc.script_pubkey, terms.amount, rate, self.tip)
        try:
            await self.scanner.save()
        except BaseException:
            # Never handed to the engine, so never journaled or broadcast: its coins are free again.
            self.wallet.release(tx)
            raise
        return SignedTx(
            self.name,
            tx.txid,
            tx.serialize(),
            Purpose.LOCK,
            f"{tx.txid}:0",
            meta={
                "address": htlc.address(self.settings.network.hrp),
                "fee": selection.fee,
                "fee_rate": rate,
                "inputs": [str(c.outpoint) for c in selection.coins],
            },
        )

    async def build_claim(self, terms: HtlcTerms, htlc_id: str, preimage: bytes) -> SignedTx:
        if len(preimage) != 32 or sha256(preimage) != terms.hashlock:
            raise ValueError(f"{self.name}: the preimage does not match the hashlock of HTLC {htlc_id}")
        htlc = self._htlc(terms)
        self._require_ours(terms.hashlock, htlc.claim_pubkey, "claim", terms)
        return await self._spend(htlc, htlc_id, preimage, locktime=self.tip, purpose=Purpose.CLAIM)

    async def build_refund(self, terms: HtlcTerms, htlc_id: str) -> SignedTx:
        htlc = self._htlc(terms)
        self._require_ours(terms.hashlock, htlc.refund_pubkey, "refund", terms)
        return await self._spend(
            htlc, htlc_id, REFUND_SELECTOR, locktime=htlc.locktime, purpose=Purpose.REFUND
        )

    def _require_ours(self, hashlock: bytes, pubkey: bytes, role: str, terms: HtlcTerms) -> None:
        if self.keys.swap_key(hashlock).pubkey != pubkey:
            raise ValueError(
                f"{self.name}: the {role} key of the HTLC with hashlock {hashlock.hex()} is not "
                f"this daemon's (terms name {pubkey.hex()}); check the swap's terms and the adapter's "
                "seed and account"
            )

    async def _amount_of(self, htlc: Htlc, htlc_id: str) -> int:
        funding = self.scanner.fundings.get(htlc_id)
        if funding is not None:
            return funding.amount
        txid, vout = htlc_id.split(":")
        out = await self.rpc.call("gettxout", txid, int(vout), True)
        if out is None or out["scriptPubKey"]["hex"] != htlc.script_pubkey.hex():
            raise ValueError(f"{self.name}: {htlc_id} is not an unspent output of this HTLC")
        return sats(out["value"])

    async def _spend(
        self, htlc: Htlc, htlc_id: str, selector: bytes, locktime: int, purpose: Purpose
    ) -> SignedTx:
        amount = await self._amount_of(htlc, htlc_id)
        index = self.wallet.take_index(CHANGE)
        await self.scanner.save()
        destination = self.wallet.script(CHANGE, index)
        # The node's tip, not the scanner's: while the scanner catches up after an outage its tip is stale,
        # and a deadline counted from it looks farther away than it is.
        node_tip = int(await self.rpc.call("getblockcount"))
        start = self.settings.fees.race_start(await self.fee_rate())
        # A claim built close to its deadline starts where the bump schedule already is.
        left = fees.claim_blocks_left(node_tip, htlc.locktime) if purpose is Purpose.CLAIM else None
        ceiling = self._ceiling(htlc, selector, destination, amount)
        if ceiling < self.settings.fees.floor:
            raise ValueError(
                f"{self.name}: HTLC {htlc_id} holds {amount} sat, too little to pay the fee floor of "
                f"{self.settings.fees.floor} sat/vB and keep its output above dust; it cannot be spent"
            )
        rate = min(fees.target_rate(start, self.settings.fees.cap, 0, left), ceiling)
        key = self.keys.swap_key(htlc.hashlock)
        tx, fee = htlc_spend(
            htlc, OutPoint.parse(htlc_id), amount, key, destination, rate, selector, locktime
        )
        meta = {
            "amount": amount,
            "fee": fee,
            "fee_rate": rate,
            "start_fee_rate": start,  # where the bump schedule starts, before the deadline and dust bounds
            "signed_tip": node_tip,
        }
        return SignedTx(self.name, tx.txid, tx.serialize(), purpose, htlc_id, meta=meta)

    def _ceiling(self, htlc: Htlc, selector: bytes, destination: bytes, amount: int) -> float:
        """The highest rate a spend of this HTLC may pay: the operator's cap, or less when the output would
        otherwise be dust (the destination is always this wallet's P2WPKH)."""
        vsize = htlc_spend_vsize(htlc, selector, destination)
        return min(self.settings.fees.cap, fees.affordable_rate(amount, vsize, P2WPKH_DUST))

    def release(self, tx: SignedTx) -> None:
        """A lock the engine dropped or never journaled: the coins it would have spent are spendable again."""
        if tx.purpose is Purpose.LOCK:
            self.wallet.release(parse_tx(tx.raw))

    # broadcasting, rebroadcasting and fee bumps

    async def broadcast(self, tx: SignedTx) -> str:
        """Broadcast ``tx``, or its latest fee-bump replacement if it has one; returns the txid sent.

        The node's tip after the first broadcast of a claim or refund is kept with its bumps: only blocks
        mined after it count as blocks the spend waited for.
        """
        state = self._bumps.get(tx.txid, {})
        raw = bytes.fromhex(state["raw"]) if "raw" in state else tx.raw
        txid = parse_tx(raw).txid if "raw" in state else tx.txid
        try:
            await self.rpc.call("sendrawtransaction", raw.hex())
        except RpcError as exc:
            if exc.code != RPC_VERIFY_ALREADY_IN_CHAIN and not any(m in exc.message for m in ALREADY_KNOWN):
                raise
        if tx.purpose in SPENDS and "sent_tip" not in state:
            sent_tip = int(await self.rpc.call("getblockcount"))
            self._bumps[tx.txid] = {**state, "sent_tip": sent_tip}
            await self.store.put_cursor(self.name, BUMPS_CURSOR, json.dumps(self._bumps))
        return txid

    async def maintain(self) -> None:
        """On a new tip: rebroadcast unconfirmed transactions (each once the engine sent it), replacing
        claims and refunds with a higher fee as they wait and as their deadline nears. A replacement is
        written to the store before it is broadcast (S4). One transaction's failure is alerted and never
        stops the others'."""
        node_tip = int(await self.rpc.call("getblockcount"))
        # What the engine has not sent is its to send first, after its last checks: a claim sent from here
        # once its leg's refund opened would hand the counterparty s (S1), and a lock sent while the engine
        # refuses it would sit on chain with no swap watching it (S2).
        journal = await self.store.unconfirmed_txs(self.name)
        unsent = await self.store.unsent(self.name)  # read second: see ``AdapterStore``
        for tx in journal:
            if self._mined(tx) or tx.txid in unsent:
                continue
            try:
                if tx.purpose in SPENDS:
                    await self._bump_if_due(tx, node_tip)
                await self.broadcast(tx)
            except RpcError as exc:
                log.info("%s: rebroadcast of %s %s refused: %s", self.name, tx.purpose, tx.txid, exc)
            except NodeUnavailable:
                raise  # the whole pass waits for the node, as the loop does
            except Exception as exc:  # whatever it is, the other swaps' spends go on
                self._alert(tx, type(exc).__name__, f"could not be rebroadcast or fee-bumped: {exc!r}")

    def _alert(self, tx: SignedTx, kind: str, reason: str) -> None:
        """An error for the operator, once per transaction and kind of trouble (per run: a restart says it
        again)."""
        if (tx.txid, kind) in self._alerted:
            return
        self._alerted.add((tx.txid, kind))
        log.error("%s: %s %s of HTLC %s %s", self.name, tx.purpose, tx.txid, tx.htlc_id, reason)

    def replacement_of(self, txid: str) -> str | None:
        """The txid of the latest fee-bump replacement of journalled transaction ``txid``, if any."""
        raw = self._bumps.get(txid, {}).get("raw")
        return parse_tx(bytes.fromhex(raw)).txid if raw else None

    def _mined(self, tx: SignedTx) -> bool:
        """Whether the scanner saw ``tx`` (or, for a spend, any spend of its HTLC) in a block."""
        funding = self.scanner.fundings.get(tx.htlc_id) if tx.htlc_id is not None else None
        if tx.purpose is Purpose.LOCK:
            return funding is not None
        if tx.purpose in SPENDS:
            return funding is not None and funding.spend is not None and funding.spend.height > 0
        return False

    async def _bump_if_due(self, original: SignedTx, node_tip: int) -> None:
        """Replace an unconfirmed claim or refund when the bump schedule asks for a higher rate than it pays.

        Blocks waited are the scanner's blocks after the first broadcast (blocks it has read, so the spend
        would have been seen in them); a claim's blocks left count from the node's tip. The replacement spends
        the same HTLC output to the same address at no more than the cap and never leaves dust; it is written
        to the adapter's ``bumps`` cursor before anything broadcasts it, and ``broadcast`` of the original
        sends it.
        """
        state = self._bumps.get(original.txid, {})
        if "sent_tip" not in state:
            return  # never broadcast: no block could have held it
        tx = parse_tx(bytes.fromhex(state["raw"]) if "raw" in state else original.raw)
        rate = float(state.get("fee_rate", original.meta["fee_rate"]))
        htlc = parse_htlc(tx.inputs[0].witness[2])
        amount = int(original.meta["amount"])
        left = fees.claim_blocks_left(node_tip, htlc.locktime) if original.purpose is Purpose.CLAIM else None
        waited = fees.blocks_waited(self.tip, int(state["sent_tip"]))
        cap = self.settings.fees.cap
        # Spends journalled before the schedule kept its start climb from the rate they were signed at.
        start = float(original.meta.get("start_fee_rate", original.meta["fee_rate"]))
        target = fees.target_rate(start, cap, waited, left)
        ceiling = self._ceiling(htlc, tx.inputs[0].witness[1], tx.outputs[0].script_pubkey, amount)
        if min(target, cap) > ceiling:
            self._alert(
                original,
                "dust",
                f"holds {amount} sat: the fee schedule asks {min(target, cap)} sat/vB, but above "
                f"{ceiling} sat/vB its output would be dust, so it pays at most that and may lose the race "
                "with the counterparty",
            )
        new_rate = fees.replacement_rate(rate, target, ceiling)
        if new_rate is None:
            return
        replacement = self._respend(tx, htlc, amount, new_rate)
        self._bumps[original.txid] = {**state, "raw": replacement.serialize().hex(), "fee_rate": new_rate}
        await self.store.put_cursor(self.name, BUMPS_CURSOR, json.dumps(self._bumps))
        log.info(
            "%s: %s %s replaced by %s at %.1f sat/vB (%d blocks waited, %s blocks before its deadline)",
            self.name,
            original.purpose,
            tx.txid,
            replacement.txid,
            new_rate,
            waited,
            "no" if left is None else left,
        )

    def _respend(self, tx: Tx, htlc: Htlc, amount: int, rate: float) -> Tx:
        selector = tx.inputs[0].witness[1]
        key = self.keys.swap_key(htlc.hashlock)
        destination = tx.outputs[0].script_pubkey
        replacement, _ = htlc_spend(
            htlc, tx.inputs[0].prevout, amount, key, destination, rate, selector, tx.locktime
        )
        return replacement


def factory(settings: Mapping[str, Any], store: AdapterStore) -> BitcoinAdapter:
    return BitcoinAdapter(BitcoinSettings.from_mapping(settings), store)


# nLockTime values from here on are unix times, not heights (BIP65): HTLC refunds here are height-locked.
LOCKTIME_THRESHOLD = 500_000_000


def _pubkey_problem(key: str) -> str | None:
    """Parties are compressed public keys in lowercase hex, so comparing strings compares keys."""
    if len(key) != 66 or key != key.lower() or key[:2] not in ("02", "03"):
        return "must be a compressed public key as 66 lowercase hex characters"
    try:
        coincurve.PublicKey(bytes.fromhex(key))
    except ValueError:
        return "is not a valid secp256k1 public key"
    return None
