"""The tables as the code queries them today (the current schema version).

Portable types only, so SQLite and PostgreSQL take the same schema: amounts are decimal text because
wei amounts exceed 64 bits and SQLite's NUMERIC would round them through a float; JSON is canonical
text; hashlocks and hashes are lower-case hex. ``migrations.py`` holds the history that builds these
tables; ``tests/unit/test_store_schema.py`` checks that a migrated database matches this module.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from .timestamps import UtcDateTime

metadata = MetaData()

AMOUNT_DIGITS = 78  # 2**256 - 1 has 78 decimal digits: the largest EVM amount
HASH_HEX = 64  # sha256 as hex

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
)

swaps = Table(
    "swaps",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("status", String(32), nullable=False),
    Column("counterparty", String(128), nullable=False),
    Column("terms", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The preimage, in a column of its own that no row type, event or API document ever reads.
    Column("secret", LargeBinary, nullable=True),
)

legs = Table(
    "legs",
    metadata,
    Column("swap_id", String(64), ForeignKey("swaps.id"), primary_key=True),
    Column("leg", Integer, primary_key=True, autoincrement=False),
    Column("chain", String(64), nullable=False),
    Column("asset", String(128), nullable=False),
    Column("amount", String(AMOUNT_DIGITS), nullable=False),
    Column("hashlock", String(HASH_HEX), nullable=False),
    Column("sender", String(128), nullable=False),
    Column("recipient", String(128), nullable=False),
    Column("timelock", BigInteger, nullable=False),
    Column("htlc_id", String(160), nullable=True),
    Column("lock_txid", String(80), nullable=True),
    Column("claim_txid", String(80), nullable=True),
    Column("refund_txid", String(80), nullable=True),
    Column("confirmations", Integer, nullable=False),
    Column("final", Boolean, nullable=False),
    Column("deadline", UtcDateTime, nullable=True),
    # One swap per hashlock (both legs of a swap share it, even on one chain): a lock on chain found by
    # its hashlock must never count for two swaps, however concurrent the acceptances.
    Index("uq_legs_hashlock_leg", "hashlock", "leg", unique=True),
)

signed_txs = Table(
    "signed_txs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("chain", String(64), nullable=False),
    Column("swap_id", String(64), ForeignKey("swaps.id"), nullable=True),
    Column("leg", Integer, nullable=True),
    Column("purpose", String(16), nullable=False),
    Column("txid", String(80), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("nonce", BigInteger, nullable=True),
    Column("meta", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("broadcast_at", UtcDateTime, nullable=True),
    Column("confirmed_height", BigInteger, nullable=True),
    Column("replaces", String(80), nullable=True),
)

chain_cursors = Table(
    "chain_cursors",
    metadata,
    Column("chain", String(64), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),
)

events = Table(
    "events",
    metadata,
    # Assigned by the store from the chain head, not by the database, so it has no gaps.
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("swap_id", String(64), nullable=True),
    Column("kind", String(64), nullable=False),
    Column("status", String(32), nullable=True),
    Column("payload", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("prev_hash", String(HASH_HEX), nullable=False),
    Column("hash", String(HASH_HEX), nullable=False),
)

# One row (id = 1): the last event's seq and hash. Appends lock it, which serialises them across
# processes, and the audit compares it with the log's last row, which is how a deleted tail shows.
event_chain_head = Table(
    "event_chain_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(HASH_HEX), nullable=False),
)

CHAIN_HEAD_ID = 1

# One row (id = LEASE_ID), PostgreSQL replicas only: the node they all are (node_id and public node key,
# written by the first to start, compared by every later one) and the leader's lease. ``token`` grows by one
# at each takeover; every write of a leader checks it (``lease.check_fence``), so a deposed leader's
# writes fail instead of committing next to the new leader's.
replica_lease = Table(
    "replica_lease",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("node_id", String(64), nullable=False),
    Column("node_key", String(66), nullable=True),
    Column("holder", String(160), nullable=True),
    Column("token", BigInteger, nullable=False),
    Column("api_url", String(256), nullable=True),
    Column("acquired_at", UtcDateTime, nullable=True),
    Column("renewed_at", UtcDateTime, nullable=True),
    Column("expires_at", UtcDateTime, nullable=True),
    # sha256 over the sha256 of each chain's key material (seed, private key): no secret, but a
    # replica configured with another wallet is told at start, not when it cannot sign a refund.
    Column("keys_fingerprint", String(64), nullable=True),
)

LEASE_ID = 1
