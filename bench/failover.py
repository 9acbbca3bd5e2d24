"""Failover time of a node run as three replicas on PostgreSQL, over repeated SIGKILLs of the leader.

Run from the repository root: ``.venv/bin/python bench/failover.py [--kills 5] [--lease 10s]``. Needs
PostgreSQL on 127.0.0.1:5432 (trust auth, database ``test``), the MQTT broker and regtest/node_modules,
as the e2e tests do. Not a test: it prints figures.

Each round SIGKILLs the leader and times, from the kill, until a standby leads and has acted: taken the
lease, rebuilt every live swap from the store, started its adapters and re-sent what was journaled, so
that its ``/v1/ready`` says ``leader``. The part after the lease expired is printed too: the rest is the
lease running out, which depends on when the dead leader last renewed it (at most ``--lease``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "regtest")]

from localnet import localnet  # noqa: E402

from settlerd.store import Store  # noqa: E402
from settlerd.store import lease as lease_row  # noqa: E402
from tests.e2e.replicas import ReplicaSet, replica_set  # noqa: E402

REPLICAS = 3


async def lease_left_s(replicas: ReplicaSet) -> float:
    """Seconds the current lease has left, on the database's clock."""
    async with await Store.open(replicas.url) as store, store.lease_tx() as conn:
        state = await lease_row.read(conn)
    assert state is not None and state.expires_at is not None
    return (state.expires_at - state.now).total_seconds()


async def main(kills: int, lease: str) -> None:
    totals: list[float] = []
    after_expiry: list[float] = []
    async with localnet(("bench",)) as net, replica_set(net, net.daemons[0], REPLICAS, lease) as replicas:
        for n in range(kills):
            victim = await replicas.leader()
            left = await lease_left_s(replicas)
            killed = time.monotonic()
            await net.kill(victim)
            await replicas.leader(not_=victim)
            total = time.monotonic() - killed
            totals.append(total)
            after_expiry.append(total - left)
            print(
                f"kill {n + 1}: {total:5.2f} s after the kill, {total - left:5.2f} s after the lease ran out"
            )
            await net.start(victim)  # back as a standby for the next rounds
    print(f"\n{REPLICAS} replicas, lease {lease}, {kills} kills of the leader")
    for name, values in (("kill to new leader acting", totals), ("lease expiry to new leader", after_expiry)):
        print(
            f"  {name:28} min {min(values):5.2f} s  median {statistics.median(values):5.2f} s  "
            f"max {max(values):5.2f} s"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--lease", default="10s", help="store.lease of the replicas (default: the default)")
    args = parser.parse_args()
    asyncio.run(main(args.kills, args.lease))
