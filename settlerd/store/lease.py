"""The leader's lease and fencing token in PostgreSQL, shared by every replica of one node.

One row (``replica_lease``) holds the node's identity, the holder of the lease, when it expires and the
fencing token. Times are the database's own clock (``clock_timestamp()``), so replicas on machines whose
clocks disagree still agree on who leads. A takeover only succeeds on an expired lease and increments the
token; a leader checks its token at the start of every write transaction with ``FOR SHARE`` on the row,
which holds a takeover back until that write has committed (so the new leader's restore sees it) and
makes any write that begins after the takeover fail. That is the fence: a leader paused (SIGSTOP) or cut
off past its lease can still send what it journaled before, never journal anything new.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from .errors import StoreError
from .schema import LEASE_ID

# A takeover waits at most this long for a leader's write in flight (it holds the row FOR SHARE); the
# standby tries again at its next poll instead of hanging behind a leader that stopped mid-write.
TAKEOVER_LOCK_TIMEOUT_MS = 2000


class LeadershipLost(StoreError):
    """This process no longer holds the lease: it must not journal, sign or broadcast anything new."""


class IdentityMismatch(StoreError):
    """A replica whose node id or node key differs from the one recorded in the shared database."""


@dataclass(frozen=True, slots=True)
class LeaseState:
    node_id: str
    node_key: str | None
    keys_fingerprint: str | None
    holder: str | None
    token: int
    api_url: str | None
    acquired_at: datetime | None
    renewed_at: datetime | None
    expires_at: datetime | None
    now: datetime  # the database's clock when the row was read

    @property
    def live(self) -> bool:
        return self.holder is not None and self.expires_at is not None and self.expires_at > self.now


_COLUMNS = (
    "node_id, node_key, keys_fingerprint, holder, token, api_url, acquired_at, renewed_at, expires_at, "
    "clock_timestamp()"
)


async def claim_identity(
    conn: AsyncConnection, node_id: str, node_key: str | None, keys_fingerprint: str, where: str
) -> None:
    """Record the node's identity on the first start; refuse a replica that is another node."""
    await conn.execute(
        text(
            "INSERT INTO replica_lease (id, node_id, node_key, keys_fingerprint, token) "
            "VALUES (:id, :node_id, :key, :keys, 0) ON CONFLICT (id) DO NOTHING"
        ),
        {"id": LEASE_ID, "node_id": node_id, "key": node_key, "keys": keys_fingerprint},
    )
    # A row written before the fingerprint existed takes this replica's.
    await conn.execute(
        text("UPDATE replica_lease SET keys_fingerprint = :keys WHERE id = :id AND keys_fingerprint IS NULL"),
        {"id": LEASE_ID, "keys": keys_fingerprint},
    )
    found = await read(conn)
    assert found is not None
    if found.node_id != node_id:
        raise IdentityMismatch(
            f"database {where} belongs to node {found.node_id!r}, this replica is {node_id!r}: replicas "
            "of one node share node_id, node key and wallet keys; give each node its own database"
        )
    if found.node_key != node_key:
        raise IdentityMismatch(
            f"database {where}: node {node_id!r} was started with node key {found.node_key or '(none)'}, "
            f"this replica has {node_key or '(none)'}: every replica must use the same engine.node_key_file"
        )
    if found.keys_fingerprint != keys_fingerprint:
        raise IdentityMismatch(
            f"database {where}: node {node_id!r} was started with other wallet keys than this replica's "
            "(the chains' seed / private key settings differ): a standby could not sign the claims and "
            "refunds of the leader's swaps; give every replica the same key credentials"
        )


async def read(conn: AsyncConnection) -> LeaseState | None:
    row = (
        await conn.execute(text(f"SELECT {_COLUMNS} FROM replica_lease WHERE id = :id"), {"id": LEASE_ID})
    ).first()
    return None if row is None else LeaseState(*row)


async def try_acquire(conn: AsyncConnection, holder: str, api_url: str, ttl_s: float) -> int | None:
    """Take the lease if it is free or expired: the new fencing token, or None while another holds it."""
    await conn.execute(text(f"SET LOCAL lock_timeout = {TAKEOVER_LOCK_TIMEOUT_MS}"))
    row = (
        await conn.execute(
            text(
                "UPDATE replica_lease SET holder = :holder, token = token + 1, api_url = :url, "
                "acquired_at = clock_timestamp(), renewed_at = clock_timestamp(), "
                "expires_at = clock_timestamp() + make_interval(secs => :ttl) "
                "WHERE id = :id AND (holder IS NULL OR expires_at IS NULL "
                "OR expires_at <= clock_timestamp()) "
                "RETURNING token"
            ),
            {"holder": holder, "url": api_url, "ttl": ttl_s, "id": LEASE_ID},
        )
    ).first()
    return None if row is None else int(row[0])


async def renew(conn: AsyncConnection, holder: str, token: int, ttl_s: float) -> None:
    """Extend a lease still held and unexpired; raises ``LeadershipLost`` otherwise."""
    row = (
        await conn.execute(
            text(
                "UPDATE replica_lease SET renewed_at = clock_timestamp(), "
                "expires_at = clock_timestamp() + make_interval(secs => :ttl) "
                "WHERE id = :id AND holder = :holder AND token = :token AND expires_at > clock_timestamp() "
                "RETURNING token"
            ),
            {"holder": holder, "token": token, "ttl": ttl_s, "id": LEASE_ID},
        )
    ).first()
    if row is None:
        raise LeadershipLost(await _lost_reason(conn, token))


async def release(conn: AsyncConnection, holder: str, token: int) -> None:
    """On a clean stop: expire the lease now, so a standby takes over at its next poll."""
    await conn.execute(
        text(
            "UPDATE replica_lease SET expires_at = clock_timestamp() "
            "WHERE id = :id AND holder = :holder AND token = :token"
        ),
        {"holder": holder, "token": token, "id": LEASE_ID},
    )


async def check_fence(conn: AsyncConnection, holder: str, token: int) -> None:
    """Inside a write transaction: go on only while this process holds the lease with ``token``.

    ``FOR SHARE`` keeps the row from changing until this transaction ends, so no takeover lands between
    this check and the commit."""
    row = (
        await conn.execute(
            text(
                "SELECT token FROM replica_lease WHERE id = :id AND holder = :holder AND token = :token "
                "AND expires_at > clock_timestamp() FOR SHARE"
            ),
            {"holder": holder, "token": token, "id": LEASE_ID},
        )
    ).first()
    if row is None:
        raise LeadershipLost(await _lost_reason(conn, token))


async def _lost_reason(conn: AsyncConnection, token: int) -> str:
    found = await read(conn)
    if found is not None and found.token != token:
        what = f"replica {found.holder} took over with fencing token {found.token}"
    elif found is not None and found.expires_at is not None:
        what = f"the lease expired at {found.expires_at.isoformat()} without being renewed"
    else:
        what = "the lease row is gone"
    return (
        f"leadership lost (fencing token {token}): {what}; this replica writes, signs and broadcasts "
        "nothing new and stops, and the leader resumes its swaps from the store"
    )
