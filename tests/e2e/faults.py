"""Helpers for the e2e fault and crash scenarios: daemons with a policy short enough for deadlines to pass
within a test run, ways to let those deadlines pass on both chains, and reads of a daemon's journal.

Deadlines are wall-clock inside the daemons, so the scenarios wait for them for real; the Bitcoin chain is
then brought to the refund's CLTV height, as the chain would reach it at its average block rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from eth_account import Account
from localnet import Daemon, Localnet, LocalnetError
from settlerd_evm.artifact import load_artifact
from web3 import AsyncWeb3

from settlerd.swap import Status
from settlerd.swap.status import TERMINAL, rank

# localnet.py's policy section, replaced for the fault daemons.
LOCALNET_POLICY = """\
leg1_duration = "60m"
leg2_duration = "30m"
leg1_claim_margin = "15m"
min_leg2_duration = "10m"
min_leg2_window = "5m"
min_time_to_reveal = "2m"
claim_urgent_window = "5m"
"""
# Swaps of four minutes: long enough for both locks, finality and claims on a loaded 2-core machine, short
# enough that the refund scenarios, run side by side, wait for their deadlines within the suite's budget.
LEG1_S = 240
LEG2_S = 150  # at most 2/3 of leg 1, and 90 s before it: more than the claim margin
MIN_TIME_TO_REVEAL_S = 40  # the initiator's claim must confirm well before the participant may refund
FAST_POLICY = f"""\
leg1_duration = "{LEG1_S}s"
leg2_duration = "{LEG2_S}s"
leg1_claim_margin = "60s"
min_leg2_duration = "100s"
min_leg2_window = "70s"
min_time_to_reveal = "{MIN_TIME_TO_REVEAL_S}s"
claim_urgent_window = "90s"
"""

TERMINAL_STATUSES = tuple(str(s) for s in TERMINAL)
FAST_POLL_S = 0.05  # to catch a status that lasts until the next block (one second) and kill in it
STEP_TIMEOUT_S = 90.0
# A refund is broadcast on the daemon's next tick after its deadline and needs the finality depth after
# that; a restarted daemon first catches its scanners up.
REFUND_TIMEOUT_S = 90.0


def fast_config(text: str) -> str:
    if LOCALNET_POLICY not in text:
        raise LocalnetError("localnet.py's config template changed: update tests/e2e/faults.py to match")
    return text.replace(LOCALNET_POLICY, FAST_POLICY)


async def add_fast_daemons(net: Localnet, names: Iterable[str]) -> list[Daemon]:
    """Funded daemons running the four-minute policy (started, stopped, reconfigured, started again:
    the harness writes one configuration for all)."""
    daemons = await net.add_daemons(names)
    await asyncio.gather(*(net.stop(d) for d in daemons))
    for daemon in daemons:
        daemon.config.write_text(fast_config(daemon.config.read_text()))
    await asyncio.gather(*(net.start(d) for d in daemons))
    return daemons


async def status(net: Localnet, daemon: Daemon, swap_id: str) -> str:
    return str((await net.swap(daemon, swap_id))["status"])


async def wait_reached(
    net: Localnet,
    daemon: Daemon,
    swap_id: str,
    target: Status,
    timeout: float = STEP_TIMEOUT_S,  # noqa: ASYNC109 (the failure names the status)
) -> Status:
    """Poll fast until the swap's status is ``target`` or past it; the status seen (to kill the daemon in)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = Status(await status(net, daemon, swap_id))
        if rank(seen) >= rank(target):
            return seen
        if time.monotonic() > deadline:
            raise LocalnetError(
                f"{daemon.name}: swap {swap_id} still {seen} after {timeout:.0f}s, wanted {target}"
            )
        await asyncio.sleep(FAST_POLL_S)


async def wait_end(net: Localnet, daemon: Daemon, swap_id: str, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
    return await net.wait_status(daemon, swap_id, *TERMINAL_STATUSES, timeout=timeout)


def leg(document: dict[str, Any], number: int) -> dict[str, Any]:
    found: dict[str, Any] = next(x for x in document["legs"] if x["leg"] == number)
    return found


def deadline_of(document: dict[str, Any], number: int) -> datetime:
    return datetime.fromisoformat(leg(document, number)["deadline"].replace("Z", "+00:00"))


async def sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


async def open_refund(net: Localnet, document: dict[str, Any], number: int) -> None:
    """Let leg ``number``'s deadline pass: wait for it in wall-clock time and, on Bitcoin, make sure the
    chain reached the CLTV height (the background miner runs a little slower than one block a second)."""
    await sleep_until(deadline_of(document, number) + timedelta(seconds=1))
    details = leg(document, number)
    if details["chain"] == "bitcoin":
        tip = int(await net.btc.rpc("getblockcount"))
        await net.mine_btc(int(details["timelock"]) + 1 - tip)


@contextlib.asynccontextmanager
async def miners_paused(net: Localnet) -> AsyncIterator[None]:
    """No background blocks on either chain while inside: the scenario mines them one by one."""
    await net.stop_miners()
    try:
        yield
    finally:
        net.start_miners()


async def mine_evm(net: Localnet, blocks: int = 1) -> None:
    for _ in range(blocks):
        await net.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


@dataclass(frozen=True)
class JournaledTx:
    leg: int
    purpose: str
    txid: str
    status: str


def journal(daemon: Daemon, swap_id: str) -> list[JournaledTx]:
    """Every signed transaction the daemon journaled for the swap, read from its store (read-only)."""
    with contextlib.closing(sqlite3.connect(f"file:{daemon.db}?mode=ro", uri=True, timeout=10)) as db:
        rows = db.execute(
            "SELECT leg, purpose, txid, status FROM signed_txs WHERE swap_id = ? ORDER BY id", (swap_id,)
        ).fetchall()
    return [JournaledTx(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]


def live_locks(daemon: Daemon, swap_id: str) -> list[JournaledTx]:
    """The lock transactions that fund (or will fund) a leg: fee-bumped predecessors do not count."""
    return locks_in(journal(daemon, swap_id))


def locks_in(entries: list[JournaledTx]) -> list[JournaledTx]:
    return [t for t in entries if t.purpose == "lock" and t.status not in ("replaced", "dropped")]


async def evm_lock_eth(
    net: Localnet, key: str, recipient: str, hashlock: str, timelock: int, wei: int
) -> str:
    """Lock ETH in the HTLC contract from ``key``'s account, as a daemon's counterparty could by hand."""
    account = Account.from_key(key)
    contract = net.w3.eth.contract(
        address=AsyncWeb3.to_checksum_address(net.htlc), abi=load_artifact()["HTLC"]["abi"]
    )
    data = contract.encode_abi(
        "lockEth", [AsyncWeb3.to_checksum_address(recipient), bytes.fromhex(hashlock), timelock]
    )
    tx = {
        "from": account.address,
        "to": contract.address,
        "data": data,
        "value": wei,
        "nonce": await net.w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": net.anvil.chain_id,
        "gas": 300_000,
        "maxFeePerGas": 100 * 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    signed = account.sign_transaction(tx)
    txid = await net.w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = await net.w3.eth.wait_for_transaction_receipt(txid)
    if receipt["status"] != 1:
        raise LocalnetError(f"manual lock {txid.hex()} reverted")
    return str(txid.hex())


def statuses(timeline: list[dict[str, Any]]) -> list[Status]:
    return [Status(e["status"]) for e in timeline]


def first_at(timeline: list[dict[str, Any]], wanted: Status) -> datetime:
    """When the swap first reached ``wanted``."""
    for event in timeline:
        if event["status"] == wanted:
            return datetime.fromisoformat(event["created_at"].replace("Z", "+00:00"))
    raise AssertionError(f"the swap never reached {wanted}: {statuses(timeline)}")
