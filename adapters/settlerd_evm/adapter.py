"""The EVM ChainAdapter: signs lock/claim/refund calls to the HTLC contract and runs the scanner."""

from __future__ import annotations

import asyncio
import logging
import math
import string
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from eth_account import Account
from eth_typing import ChecksumAddress, HexStr
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound, Web3RPCError
from web3.providers.rpc.utils import ExceptionRetryConfiguration

from settlerd.adapters import (
    AdapterConfigError,
    AdapterStore,
    ChainEvent,
    Check,
    HtlcSpent,
    HtlcTerms,
    Purpose,
    SignedTx,
    TimeLeft,
    TimelockBounds,
)

from . import contract as c
from . import fees
from .artifact import htlc
from .diagnose import diagnose as run_checks
from .keeper import Keeper
from .nonces import NonceManager
from .scanner import Scanner
from .settings import EvmSettings

log = logging.getLogger(__name__)

# Block proposers may set timestamps a little ahead of real time; a timelock this much past the deadline
# cannot let a refund through before the deadline.
TIMESTAMP_DRIFT_S = 15
# The earliest bound is certain (the drift allowance is the contract's own margin); the latest holds but for
# a longer run of missed blocks than the lag allows, which is rarer than this.
BLOCK_LAG_PROBABILITY = 1e-6
# Gas estimates are exact for the current state; storage warmth and token balances can differ by the time
# the transaction is mined.
GAS_HEADROOM_NUM, GAS_HEADROOM_DEN = 5, 4
# A lock signed right after its approve cannot be estimated (the approve is not mined yet); ERC-20
# transfers of mainstream tokens stay far below this.
TOKEN_LOCK_GAS = 200_000
# A plain value transfer to an account without code costs exactly this (the yellow paper's G_transaction).
TRANSFER_GAS = 21_000


class HtlcReverted(RuntimeError):
    """The contract would revert; ``error`` is its custom error name (SwapNotActive, ClaimExpired, ...)."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(f"HTLC call reverts with {error}: {detail}")
        self.error = error


# Attempts of one call on a connection error or timeout before it fails to the caller (the supervisor
# restarts a failed loop): a blip is ridden out, a node that hangs costs at most this many timeouts.
RPC_ATTEMPTS = 3
RPC_RETRY_BACKOFF_S = 0.25  # before the 2nd attempt; doubled before the 3rd

# Timelocks are unix seconds (block.timestamp): anything outside these is a unit mistake, not a date.
EARLIEST_TIMELOCK = 1_500_000_000
LATEST_TIMELOCK = 2**40


class EvmAdapter:
    native_asset = c.ETH

    def __init__(self, settings: EvmSettings, store: AdapterStore) -> None:
        self.settings = settings
        self.name = settings.name
        self._store = store
        self._account = Account.from_key(settings.key)
        self.address: ChecksumAddress = self._account.address
        self.w3 = AsyncWeb3(
            AsyncHTTPProvider(
                settings.rpc_url,
                request_kwargs={"timeout": aiohttp.ClientTimeout(total=settings.rpc_timeout)},
                exception_retry_configuration=ExceptionRetryConfiguration(
                    errors=(aiohttp.ClientError, TimeoutError),
                    retries=RPC_ATTEMPTS,
                    backoff_factor=RPC_RETRY_BACKOFF_S,
                ),
            )
        )
        self.contract = AsyncWeb3.to_checksum_address(settings.contract)
        self._queue: asyncio.Queue[ChainEvent] = asyncio.Queue()
        self.nonces = NonceManager(self.name, self.address, store)
        self.scanner = Scanner(
            self.w3, self.name, self.contract, store, self._queue.put_nowait,
            finality_depth=settings.finality_depth, backfill_blocks=settings.backfill_blocks,
        )  # fmt: skip
        self.keeper = Keeper(self, store)
        self._chain_id = 0

    # lifecycle

    async def start(self) -> None:
        self._chain_id = int(await self.w3.eth.chain_id)
        if self.settings.chain_id is not None and self._chain_id != self.settings.chain_id:
            raise AdapterConfigError(
                f"{self.name}: node {self.settings.rpc_url} is on chain id {self._chain_id}, "
                f"settings say {self.settings.chain_id}: point rpc_url at the right network"
            )
        code = "0x" + bytes(await self.w3.eth.get_code(self.contract)).hex()
        if code != htlc()["deployedBytecode"].lower():
            what = "no code" if code == "0x" else "other code than settlerd's HTLC contract"
            raise AdapterConfigError(
                f"{self.name}: address {self.contract} holds {what}: deploy it with "
                "`settlerd contract deploy` and set the chain's contract setting to the printed address"
            )
        await self.nonces.sync(int(await self.w3.eth.get_transaction_count(self.address, "pending")))
        await self.scanner.resume(self.settings.start_block)

    async def diagnose(self) -> list[Check]:
        """Checks for ``settlerd doctor``, on an adapter that was not started (see ``diagnose.py``)."""
        return await run_checks(self)

    async def close(self) -> None:
        await self.w3.provider.disconnect()

    async def run(self) -> None:
        """Poll the node: new logs into events, then rebroadcasts and fee bumps once per new block.

        Any failure ends it; the daemon restarts it with backoff (the scanner resumes from its cursor)."""
        while True:
            await self.scanner.poll()
            if self.scanner.height is not None:
                await self.keeper.step(self.scanner.height)
            await asyncio.sleep(self.settings.poll_interval_s)

    # time

    async def timelock_for(self, deadline: datetime) -> int:
        return math.ceil(deadline.timestamp()) + TIMESTAMP_DRIFT_S

    async def bounds_of(self, timelock: int) -> TimelockBounds:
        # Opens with the first block stamped at or after the timelock: a proposer running fast may stamp
        # it up to the drift allowance early, and that block may come up to the lag late.
        return TimelockBounds(
            earliest=datetime.fromtimestamp(timelock - TIMESTAMP_DRIFT_S, UTC),
            latest=datetime.fromtimestamp(timelock + self.settings.block_lag_s, UTC),
            probability=BLOCK_LAG_PROBABILITY,
        )

    async def time_left(self, timelock: int) -> TimeLeft:
        # The contract compares the timelock with block.timestamp: counted from the latest block's, which
        # the next proposer may run up to the drift allowance ahead of.
        block = await self.w3.eth.get_block("latest")
        seconds = timelock - int(block["timestamp"])
        return TimeLeft(
            earliest=timedelta(seconds=max(0, seconds - TIMESTAMP_DRIFT_S)),
            latest=timedelta(seconds=max(0, seconds + self.settings.block_lag_s)),
            probability=BLOCK_LAG_PROBABILITY,
        )

    # identity and funds

    def check_terms(self, terms: HtlcTerms) -> list[str]:
        problems = [
            f"{role}: {address!r} is not a checksummed address"
            for role, address in (("recipient", terms.recipient), ("sender", terms.sender))
            if not AsyncWeb3.is_checksum_address(address)
        ]
        if terms.asset.upper() != c.ETH and not AsyncWeb3.is_checksum_address(terms.asset):
            problems.append(f"asset: {terms.asset!r} is neither ETH nor a checksummed token address")
        if not 1 <= terms.amount <= c.MAX_AMOUNT:
            problems.append(
                f"amount: {terms.amount} is outside 1 to {c.MAX_AMOUNT} (2**96 - 1, the contract's range)"
            )
        if not EARLIEST_TIMELOCK <= terms.timelock < LATEST_TIMELOCK:
            problems.append(f"timelock: {terms.timelock} is not a plausible unix time")
        return problems

    def canonical_asset(self, asset: str) -> str:
        if asset.upper() == c.ETH:
            return c.ETH
        digits = asset[2:] if asset.startswith("0x") else ""
        one_case = digits in (digits.lower(), digits.upper())
        well_formed = len(digits) == 40 and all(ch in string.hexdigits for ch in digits)
        if not well_formed or not (one_case or AsyncWeb3.is_checksum_address(asset)):
            raise ValueError(
                f"{asset!r} is neither ETH nor a token contract address (0x and 40 hex digits; "
                "mixed case must be a valid EIP-55 checksum)"
            )
        token = AsyncWeb3.to_checksum_address(asset)
        if token == c.ZERO_ADDRESS:
            raise ValueError("the zero address is how the contract names ETH: write ETH")
        return str(token)

    def party(self, hashlock: bytes) -> str:
        """One account signs every swap: the contract tells swaps apart by hashlock and sender."""
        return self.address

    async def sync_status(self) -> tuple[int, int]:
        scanned = self.scanner.height
        return (-1 if scanned is None else scanned), int(await self.w3.eth.block_number)

    async def receive_address(self) -> str:
        return self.address

    async def spendable(self, asset: str) -> int:
        # After our pending transactions: a lock sent but not mined yet has spent its amount already. Read
        # at the latest block, a second lock would pass the check, then never be mined for want of funds,
        # its nonce a gap that blocks every later transaction of the account, claims and refunds included.
        token = c.token_address(asset)
        if token == c.ZERO_ADDRESS:
            return int(await self.w3.eth.get_balance(self.address, "pending"))
        raw = await self.w3.eth.call({"to": token, "data": c.balance_of(self.address)}, "pending")
        return int.from_bytes(bytes(raw)[:32], "big")

    # scanning

    def watch(self, terms: HtlcTerms) -> None:
        self.scanner.watch(terms)

    def unwatch(self, hashlock: bytes) -> None:
        self.scanner.unwatch(hashlock)

    async def events(self) -> AsyncIterator[ChainEvent]:
        while True:
            yield await self._queue.get()

    def take_events(self) -> list[ChainEvent]:
        """Events found so far, without waiting: for callers that drive ``scanner.poll()`` themselves."""
        found = []
        while not self._queue.empty():
            found.append(self._queue.get_nowait())
        return found

    # signing

    async def build_lock(self, terms: HtlcTerms) -> SignedTx:
        """The lock; an ERC-20 short of allowance gets an exact approve, signed first, in meta["before"]."""
        token = c.token_address(terms.asset)
        # The contract's id for the swap: what the scanner reports as htlc_id for this lock.
        htlc_id = "0x" + c.swap_id(token, self.address, terms.timelock, terms.hashlock).hex()
        if token == c.ZERO_ADDRESS:
            data = c.lock_eth(terms.recipient, terms.hashlock, terms.timelock)
            return await self._sign(Purpose.LOCK, data, value=terms.amount, htlc_id=htlc_id)
        data = c.lock_token(token, terms.recipient, terms.amount, terms.hashlock, terms.timelock)
        raw = await self.w3.eth.call({"to": token, "data": c.allowance(self.address, self.contract)})
        if int.from_bytes(bytes(raw)[:32], "big") >= terms.amount:
            return await self._sign(Purpose.LOCK, data, htlc_id=htlc_id)
        # One fee quote for both, taken before either nonce: no node call can fail between the two
        # nonces, which would leave the approve's nonce handed out and never journaled (a gap).
        quote = fees.quote(await self._base_fee(), self.settings.fee_policy())
        approve = c.approve(self.contract, terms.amount)
        approval = await self._sign(Purpose.APPROVE, approve, to=token, quote=quote)
        lock = await self._sign(Purpose.LOCK, data, gas=TOKEN_LOCK_GAS, htlc_id=htlc_id, quote=quote)
        return replace(lock, meta={**lock.meta, "before": [_as_meta(approval)]})

    async def build_claim(self, terms: HtlcTerms, htlc_id: str, preimage: bytes) -> SignedTx:
        data = c.claim(c.token_address(terms.asset), terms.sender, terms.timelock, preimage)
        try:
            # The timelock goes into meta so the keeper can bump a claim sooner as it draws near.
            return await self._sign(Purpose.CLAIM, data, htlc_id=htlc_id, timelock=terms.timelock)
        except HtlcReverted as exc:
            await self._raise_if_spent(terms, exc)
            raise

    async def build_refund(self, terms: HtlcTerms, htlc_id: str) -> SignedTx:
        data = c.refund(c.token_address(terms.asset), terms.sender, terms.timelock, terms.hashlock)
        try:
            return await self._sign(Purpose.REFUND, data, htlc_id=htlc_id)
        except HtlcReverted as exc:
            await self._raise_if_spent(terms, exc)
            raise

    async def _raise_if_spent(self, terms: HtlcTerms, exc: HtlcReverted) -> None:
        """SwapNotActive: never locked, a wrong preimage, or already spent. Spent, its Claimed or Refunded
        log is found and handed on as an event, and ``HtlcSpent`` raised; otherwise the caller re-raises."""
        if exc.error != "SwapNotActive":
            return
        # The id from the agreed terms, not the caller's: a claim with a wrong preimage asks for another.
        htlc_id = c.swap_id(c.token_address(terms.asset), terms.sender, terms.timelock, terms.hashlock)
        spend = await self.scanner.find_spend(htlc_id, terms.hashlock)
        if spend is not None:
            raise HtlcSpent(
                f"{self.name}: HTLC 0x{htlc_id.hex()} was already {spend.fact} in {spend.txid} "
                f"(block {spend.height})"
            ) from exc

    async def build_bump(self, tx: SignedTx) -> SignedTx:
        """The same call at the same nonce with higher fees, to replace a transaction that is stuck."""
        m = tx.meta
        previous = fees.Fees(int(m["max_fee_per_gas"]), int(m["max_priority_fee_per_gas"]))
        new = fees.bump(previous, await self._base_fee(), self.settings.fee_policy())
        return self._signed(
            tx.purpose, str(m["to"]), bytes.fromhex(str(m["data"])[2:]), int(m["value"]), int(m["gas"]),
            int(m["nonce"]), new, tx.htlc_id, {k: v for k, v in m.items() if k in ("before", "timelock")},
        )  # fmt: skip

    async def build_cancel(self, tx: SignedTx) -> SignedTx:
        """A 0-value transfer to our own address at ``tx``'s nonce, priced as its bump: it uses the nonce
        in ``tx``'s place, and replaces ``tx`` too if ``tx`` reached a node after all. An approve signed
        before ``tx`` stays before it, so its nonce is no gap either."""
        m = tx.meta
        previous = fees.Fees(int(m["max_fee_per_gas"]), int(m["max_priority_fee_per_gas"]))
        base_fee = await self._base_fee()
        try:
            new = fees.bump(previous, base_fee, self.settings.fee_policy())
        except fees.FeeCapReached:
            # Over the cap only if ``tx`` paid near it: a fresh quote still uses the nonce wherever ``tx``
            # never reached, the case this is for.
            new = fees.quote(base_fee, self.settings.fee_policy())
        extra = {k: v for k, v in m.items() if k == "before"}
        return self._signed(
            Purpose.CANCEL, self.address, b"", 0, TRANSFER_GAS, int(m["nonce"]), new, None, extra
        )

    async def broadcast(self, tx: SignedTx) -> str:
        for before in tx.meta.get("before", ()):
            await self._send(bytes.fromhex(before["raw"][2:]), before["txid"])
        await self._send(tx.raw, tx.txid)
        return tx.txid

    async def _send(self, raw: bytes, txid: str) -> None:
        try:
            await self.w3.eth.send_raw_transaction(raw)
        except Web3RPCError:
            # Already known, or already mined: harmless. Anything else is the node's verdict to report.
            try:
                await self.w3.eth.get_transaction(HexStr(txid))
            except TransactionNotFound:
                raise
            log.debug("%s: %s was already known to the node", self.name, txid)

    async def _base_fee(self) -> int:
        block = await self.w3.eth.get_block("latest")
        return int(block["baseFeePerGas"])

    async def _sign(
        self, purpose: Purpose, data: bytes, *, value: int = 0, to: str | None = None, gas: int | None = None,
        htlc_id: str | None = None, timelock: int | None = None, quote: fees.Fees | None = None,
    ) -> SignedTx:  # fmt: skip
        to = to or self.contract
        if gas is None:
            call = {"from": self.address, "to": to, "data": data, "value": value}
            try:
                estimate = int(await self.w3.eth.estimate_gas(call))  # type: ignore[arg-type]
            except (ContractCustomError, ContractLogicError) as exc:
                revert = bytes.fromhex(str(exc.data or "0x")[2:]) if isinstance(exc.data, str) else b""
                raise HtlcReverted(c.error_name(revert) or "revert", str(exc)) from exc
            gas = estimate * GAS_HEADROOM_NUM // GAS_HEADROOM_DEN
        quote = quote or fees.quote(await self._base_fee(), self.settings.fee_policy())
        nonce = await self.nonces.allocate()
        extra = {"timelock": timelock} if timelock is not None else {}
        return self._signed(purpose, to, data, value, gas, nonce, quote, htlc_id, extra)

    def _signed(
        self, purpose: Purpose, to: str, data: bytes, value: int, gas: int, nonce: int, fee: fees.Fees,
        htlc_id: str | None, extra: Mapping[str, Any],
    ) -> SignedTx:  # fmt: skip
        tx = {
            "type": 2, "chainId": self._chain_id, "nonce": nonce, "to": to, "value": value, "data": data,
            "gas": gas, "maxFeePerGas": fee.max_fee_per_gas,
            "maxPriorityFeePerGas": fee.max_priority_fee_per_gas,
        }  # fmt: skip
        signed = self._account.sign_transaction(tx)
        txid = "0x" + bytes(signed.hash).hex()
        meta = {
            "from": self.address, "to": to, "value": value, "data": "0x" + data.hex(), "gas": gas,
            "nonce": nonce, "max_fee_per_gas": fee.max_fee_per_gas,
            "max_priority_fee_per_gas": fee.max_priority_fee_per_gas, **extra,
        }  # fmt: skip
        return SignedTx(self.name, txid, bytes(signed.raw_transaction), purpose, htlc_id, nonce, meta)


def _as_meta(tx: SignedTx) -> dict[str, Any]:
    return {"txid": tx.txid, "raw": "0x" + tx.raw.hex(), "nonce": tx.nonce, "purpose": tx.purpose.value}


def factory(settings: Mapping[str, Any], store: AdapterStore) -> EvmAdapter:
    return EvmAdapter(EvmSettings.from_mapping(settings), store)
