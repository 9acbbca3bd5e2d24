"""What every settled swap must show: balances moved as agreed, a forward-only timeline, an intact audit."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from localnet import Daemon, Localnet

from settlerd.swap import Status
from settlerd.swap.status import rank

# Upper bounds on what one side may pay in fees for its part of a swap on the local chains, generous on
# purpose: a lock plus a claim at the adapter's fee floor costs a few hundred sat, the EVM calls a few
# hundred thousand gas at anvil's ~1 gwei.
MAX_BTC_FEES_SATS = 20_000
MAX_EVM_FEES_WEI = 10**16

# S1 and S2 as seen in one daemon's timeline: the participant locks leg 2 only after leg 1 was final;
# the initiator reveals the secret (claims leg 2) only after leg 2 was final.
MUST_PRECEDE = {
    "participant": (Status.LEG1_FINAL, Status.LEG2_LOCKING),
    "initiator": (Status.LEG2_FINAL, Status.LEG2_CLAIMING),
}


@dataclass(frozen=True)
class Balances:
    btc: int  # spendable sats in the daemon's wallet
    eth: int  # wei of the daemon's EVM account
    token: int  # test ERC-20 units of the daemon's EVM account


async def balances(net: Localnet, daemon: Daemon) -> Balances:
    wallets = await net.wallets(daemon)
    return Balances(
        btc=int(wallets["bitcoin"]["spendable"]),
        eth=await net.eth_balance(daemon.evm_address),
        token=await net.token_balance(daemon.evm_address),
    )


def assert_paid(asset: str, before: int, after: int, amount: int, max_fees: int) -> None:
    """Gave ``amount`` (positive: received it) and paid at most ``max_fees`` for doing so."""
    moved = after - before
    assert amount - max_fees <= moved <= amount, (
        f"{asset}: balance moved by {moved}, expected {amount} less at most {max_fees} of fees"
    )


async def assert_settled(net: Localnet, daemon: Daemon, swap_id: str) -> list[dict[str, Any]]:
    """Both legs locked and claimed in the status document; the timeline forward-only and in protocol
    order; `settlerd audit verify` passes. Returns the timeline."""
    document = await net.swap(daemon, swap_id)
    assert document["status"] == Status.COMPLETED and document["terminal"], document
    for leg in document["legs"]:
        assert leg["lock_txid"] and leg["claim_txid"] and leg["refund_txid"] is None, (daemon.name, leg)

    timeline = await net.timeline(daemon, swap_id)
    statuses = [Status(event["status"]) for event in timeline]
    seqs = [event["seq"] for event in timeline]
    assert seqs == sorted(set(seqs)), f"{daemon.name}: event seqs not strictly increasing: {seqs}"
    assert statuses[0] == Status.OFFERED and statuses[-1] == Status.COMPLETED, statuses
    assert statuses.count(Status.COMPLETED) == 1, statuses
    backwards = [(x, y) for x, y in pairwise(statuses) if rank(y) < rank(x)]
    assert not backwards, f"{daemon.name}: status moved backwards {backwards} in {statuses}"
    changes = [e["payload"]["change"] for e in timeline if e["payload"].get("change")]
    assert not any(change["reorg"] for change in changes), changes
    first, then = MUST_PRECEDE[document["role"]]
    assert first in statuses and then in statuses, (document["role"], statuses)
    assert statuses.index(first) < statuses.index(then), (document["role"], statuses)

    code, output = await net.audit_verify(daemon)
    assert code == 0 and "intact" in output, output
    return timeline
