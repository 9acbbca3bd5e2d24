"""Failover: one node as three replicas on PostgreSQL, its leader killed, paused and cut off mid-swap.

The node ("rep") trades BTC against ETH with a single-process peer. While swaps are in flight its leader
is SIGKILLed at nine protocol steps (as initiator: leg 1 locking, locked and final, leg 2 locked and
final, leg 2 claiming, which reveals the secret; as participant: leg 2 locking and locked, an EVM lock
and its nonce, and leg 1 claiming), paused with SIGSTOP for longer than its lease then resumed, and has
its database connections cut. Each time a
standby takes over and resumes the swaps from the store. At the end every swap is completed on both
sides, each leg was funded by exactly one transaction (the one on chain), a leader that came back after
losing its lease stopped instead of acting, and the node's MQTT event stream has no gap and no reordering.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
from collections.abc import AsyncIterator

import aiomqtt
import pytest
from localnet import ApiFailure, Daemon, Localnet, btc, eth

from settlerd.status.signature import verify_message
from settlerd.swap import Status
from settlerd.swap.status import rank

from .faults import live_locks
from .replicas import ReplicaSet, replica_set

S = Status
BTC_AMOUNT = 1_000_000
ETH_AMOUNT = 10**16
LEASE = "4s"
LEASE_S = 4.0
# Takeover bound: the lease lapsing, the standby's next poll (a quarter lease), its resume; on a loaded
# 2-core machine resuming (scanners catching up) takes a few seconds more.
MAX_FAILOVER_S = LEASE_S + 15.0
# (the node's role, the step its leader is killed in): as initiator it locks leg 1 (BTC) and claims leg 2
# (ETH, revealing the secret), as participant it locks leg 2 (an EVM nonce) and claims leg 1.
INITIATOR, PARTICIPANT = "initiator", "participant"
KILL_POINTS: tuple[tuple[str, Status], ...] = (
    (INITIATOR, S.LEG1_LOCKING),
    (INITIATOR, S.LEG1_LOCKED),
    (INITIATOR, S.LEG1_FINAL),
    (INITIATOR, S.LEG2_LOCKED),
    (INITIATOR, S.LEG2_FINAL),
    (INITIATOR, S.LEG2_CLAIMING),
    (PARTICIPANT, S.LEG2_LOCKING),
    (PARTICIPANT, S.LEG2_LOCKED),
    (PARTICIPANT, S.LEG1_CLAIMING),
)
STEP_TIMEOUT_S = 120.0
END_TIMEOUT_S = 300.0
COINS, COIN_SATS = 8, 20_000_000  # several swaps lock BTC at once; a lock spends confirmed coins only


@pytest.fixture(scope="module")
async def node(net: Localnet) -> AsyncIterator[tuple[ReplicaSet, Daemon]]:
    base, peer = await net.add_daemons(("rep", "rep-peer"))
    await asyncio.gather(*(net.fund_btc(d, COIN_SATS, outputs=COINS) for d in (base, peer)))
    async with replica_set(net, base, 3, LEASE) as replicas:
        yield replicas, peer


async def collect(node_id: str, pubkey: str, into: list[int], subscribed: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.subscribe(f"settlerd/v1/{node_id}/events", qos=1)
        subscribed.set()
        async for message in client.messages:
            into.append(int(verify_message(bytes(message.payload), pubkey, str(message.topic))["seq"]))


async def reach(rs: ReplicaSet, swap_id: str, step: Status) -> Status:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while True:
        seen = Status((await rs.swap(swap_id))["status"])
        if rank(seen) >= rank(step):
            return seen
        assert time.monotonic() < deadline, (swap_id, seen, step)
        await asyncio.sleep(0.05)


async def trade(rs: ReplicaSet, peer: Daemon, role: str = INITIATOR) -> str:
    """A swap in which the node gives BTC for ETH as initiator, or ETH for BTC as participant."""
    leader = await rs.leader()
    if role == INITIATOR:
        return await rs.net.trade(leader, peer, give=btc(BTC_AMOUNT), get=eth(ETH_AMOUNT))
    return await rs.net.trade(peer, leader, give=btc(BTC_AMOUNT), get=eth(ETH_AMOUNT))


async def test_failover_keeps_every_swap_safe_and_the_event_stream_whole(
    node: tuple[ReplicaSet, Daemon],
) -> None:
    rs, peer = node
    net = rs.net
    seqs: list[int] = []
    subscribed = asyncio.Event()
    listener = asyncio.create_task(collect(rs.base.node_id, rs.base.node_pubkey, seqs, subscribed))
    await asyncio.wait_for(subscribed.wait(), 10)
    swaps: list[tuple[str, str, str]] = []  # (swap id, the node's role, what happened to its leader)
    failovers: list[float] = []
    try:
        # Standbys read; their trade routes point at the leader.
        leader = await rs.leader()
        standby = next(r for r in rs.replicas if r is not leader)
        with pytest.raises(ApiFailure) as refused:
            await net.api(standby, "POST", "/v1/swaps", {"counterparty": peer.node_id})
        assert refused.value.status == 503 and refused.value.body["leader"] == leader.url, refused.value.body

        for role, step in KILL_POINTS:
            swap_id = await trade(rs, peer, role)
            seen = await reach(rs, swap_id, step)
            victim = await rs.leader()
            await net.kill(victim)
            _, took = await rs.failover(victim)
            failovers.append(took)
            swaps.append((swap_id, role, f"SIGKILL in {seen}"))
            await net.start(victim)  # back as a standby

        # Paused past its lease: a standby takes over; woken, the old leader stops, having acted on nothing.
        swap_id = await trade(rs, peer)
        seen = await reach(rs, swap_id, S.LEG1_LOCKED)
        victim = await rs.leader()
        rs.pause(victim)
        _, took = await rs.failover(victim)
        failovers.append(took)
        await asyncio.sleep(LEASE_S)
        rs.resume(victim)
        assert await rs.wait_exit(victim) != 0
        assert "leadership lost" in victim.log_tail(40), victim.log_tail(40)
        swaps.append((swap_id, INITIATOR, f"SIGSTOP in {seen}"))
        await net.start(victim)

        # Cut off from the database: it stops once it cannot renew (or write); a standby takes over.
        swap_id = await trade(rs, peer)
        seen = await reach(rs, swap_id, S.LEG2_LOCKED)
        victim = await rs.leader()
        await rs.proxies[victim.name].cut()
        _, took = await rs.failover(victim)
        failovers.append(took)
        assert await rs.wait_exit(victim) != 0
        swaps.append((swap_id, INITIATOR, f"DB cut in {seen}"))
        await rs.proxies[victim.name].open()
        await net.start(victim)

        reader = await rs.reader()
        ends = await asyncio.gather(
            *(
                net.wait_status(d, s, "completed", timeout=END_TIMEOUT_S)
                for s, _, _ in swaps
                for d in (reader, peer)
            )
        )
        head = await rs.event_head()
        for _ in range(150):  # the last events reach the broker within seconds
            if seqs and max(seqs) >= head:
                break
            await asyncio.sleep(0.2)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    sys.stderr.write(
        "\nfailover (s): " + ", ".join(f"{t:.1f}" for t in failovers) + "\n"
        + "".join(f"  {s} {role:11} {what}\n" for s, role, what in swaps)
    )  # fmt: skip

    assert max(failovers) < MAX_FAILOVER_S, failovers
    for n, (swap_id, role, what) in enumerate(swaps):
        mine, theirs = ends[2 * n], ends[2 * n + 1]
        assert (mine["status"], theirs["status"]) == (S.COMPLETED, S.COMPLETED), (swap_id, role, what)
        # S4: one funding transaction per leg, the one on chain, whichever replica signed it.
        own_leg, their_leg = (1, 2) if role == INITIATOR else (2, 1)
        own = [lock for lock in await rs.locks(swap_id) if lock[2] not in ("replaced", "dropped")]
        assert [lock[0] for lock in own] == [own_leg], (swap_id, role, what, own)
        on_chain = next(x for x in mine["legs"] if x["leg"] == own_leg)["lock_txid"]
        assert own[0][1] == on_chain, (swap_id, role, what, own, on_chain)
        theirs_locks = live_locks(peer, swap_id)
        assert [t.leg for t in theirs_locks] == [their_leg], (swap_id, role, what, theirs_locks)

    # MQTT: a consumer dropping seqs it has seen (a takeover may repeat the last batch) gets every event
    # of the node, in order, up to the head of the shared log.
    delivered: list[int] = []
    for seq in seqs:
        if not delivered or seq > delivered[-1]:
            delivered.append(seq)
    assert delivered == list(range(delivered[0], delivered[-1] + 1)), _gaps(delivered)
    assert delivered[-1] == await rs.event_head()


def _gaps(seqs: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in itertools.pairwise(seqs) if b != a + 1]
