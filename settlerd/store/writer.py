"""One write transaction: a state change and its event commit together or not at all (S6)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..adapters import SignedTx
from . import queries
from . import schema as t
from .errors import Conflict, HashlockInUse, NotFound
from .hashchain import canonical_json, event_hash
from .rows import Event, Leg, Swap, TxStatus, journal_meta
from .timestamps import utcnow


class WriteTx:
    """Handed out by ``Store.write()``; valid only inside its ``async with`` block."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    def _upsert(self, table: Any) -> postgresql.Insert | sqlite.Insert:
        if self._conn.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # swaps

    async def insert_swap(
        self,
        swap_id: str,
        *,
        role: str,
        status: str,
        counterparty: str,
        terms: Mapping[str, Any],
        secret: bytes | None = None,
        now: datetime | None = None,
    ) -> Swap:
        at = now or utcnow()
        q = insert(t.swaps).values(
            id=swap_id,
            role=role,
            status=status,
            counterparty=counterparty,
            terms=canonical_json(terms),
            created_at=at,
            updated_at=at,
            secret=secret,
        )
        try:
            await self._conn.execute(q)
        except IntegrityError:
            raise Conflict(f"swap {swap_id} already exists") from None
        return Swap(swap_id, role, status, counterparty, dict(terms), at, at)

    async def update_swap(
        self,
        swap_id: str,
        *,
        status: str | None = None,
        terms: Mapping[str, Any] | None = None,
        counterparty: str | None = None,
        expected_status: str | None = None,
    ) -> Swap:
        """Change a swap; with ``expected_status`` only if it is still in that status."""
        values: dict[str, Any] = {"updated_at": utcnow()}
        if status is not None:
            values["status"] = status
        if terms is not None:
            values["terms"] = canonical_json(terms)
        if counterparty is not None:
            values["counterparty"] = counterparty
        q = update(t.swaps).where(t.swaps.c.id == swap_id).values(**values)
        if expected_status is not None:
            q = q.where(t.swaps.c.status == expected_status)
        result = await self._conn.execute(q)
        if result.rowcount != 1:
            current = await queries.get_swap(self._conn, swap_id)
            if current is None:
                raise NotFound(f"swap {swap_id} does not exist")
            raise Conflict(f"swap {swap_id} is {current.status!r}, not {expected_status!r}")
        found = await queries.get_swap(self._conn, swap_id)
        assert found is not None
        return found

    async def set_secret(self, swap_id: str, secret: bytes) -> None:
        """Keep the preimage (the initiator's own, or one a participant saw on chain)."""
        q = update(t.swaps).where(t.swaps.c.id == swap_id).values(secret=secret)
        if (await self._conn.execute(q)).rowcount != 1:
            raise NotFound(f"swap {swap_id} does not exist")

    async def get_swap(self, swap_id: str) -> Swap | None:
        return await queries.get_swap(self._conn, swap_id)

    # legs

    async def upsert_leg(self, leg: Leg) -> None:
        """Insert or update a leg; raises ``HashlockInUse`` if another swap's same leg has its hashlock."""
        other = select(t.legs.c.swap_id).where(
            t.legs.c.hashlock == leg.hashlock.hex(), t.legs.c.leg == leg.leg, t.legs.c.swap_id != leg.swap_id
        )
        taken = (await self._conn.execute(other)).scalar()
        if taken is not None:
            raise HashlockInUse(f"hashlock {leg.hashlock.hex()} already backs swap {taken}", str(taken))
        values = {
            "chain": leg.chain,
            "asset": leg.asset,
            "amount": str(leg.amount),
            "hashlock": leg.hashlock.hex(),
            "sender": leg.sender,
            "recipient": leg.recipient,
            "timelock": leg.timelock,
            "htlc_id": leg.htlc_id,
            "lock_txid": leg.lock_txid,
            "claim_txid": leg.claim_txid,
            "refund_txid": leg.refund_txid,
            "confirmations": leg.confirmations,
            "final": leg.final,
            "deadline": leg.deadline,
        }
        q = (
            self._upsert(t.legs)
            .values(swap_id=leg.swap_id, leg=leg.leg, **values)
            .on_conflict_do_update(index_elements=["swap_id", "leg"], set_=values)
        )
        try:
            await self._conn.execute(q)
        except IntegrityError as exc:
            # Another process (a replica on the same PostgreSQL) committed the hashlock after our check.
            if "unique" not in str(exc.orig).lower():
                raise
            raise HashlockInUse(f"hashlock {leg.hashlock.hex()} already backs another swap") from None

    # signed transactions (S4: recorded here before any broadcast)

    async def record_signed_tx(
        self,
        tx: SignedTx,
        swap_id: str | None = None,
        leg: int | None = None,
        *,
        replaces: str | None = None,
    ) -> None:
        """Journal a signed transaction; recording the same (chain, txid) again changes nothing."""
        q = (
            self._upsert(t.signed_txs)
            .values(
                chain=tx.chain,
                swap_id=swap_id,
                leg=leg,
                purpose=tx.purpose.value,
                txid=tx.txid,
                raw=tx.raw,
                nonce=tx.nonce,
                meta=canonical_json(journal_meta(tx)),
                status=TxStatus.SIGNED.value,
                created_at=utcnow(),
                replaces=replaces,
            )
            .on_conflict_do_nothing(index_elements=["chain", "txid"])
        )
        await self._conn.execute(q)

    async def mark_tx(
        self,
        txid: str,
        status: TxStatus,
        *,
        chain: str | None = None,
        confirmed_height: int | None = None,
    ) -> None:
        values: dict[str, Any] = {"status": TxStatus(status).value}
        if status is TxStatus.BROADCAST:
            values["broadcast_at"] = utcnow()
        if confirmed_height is not None:
            values["confirmed_height"] = confirmed_height
        q = update(t.signed_txs).where(t.signed_txs.c.txid == txid).values(**values)
        if chain is not None:
            q = q.where(t.signed_txs.c.chain == chain)
        if (await self._conn.execute(q)).rowcount == 0:
            raise NotFound(f"no signed transaction {txid} in the journal")

    # cursors

    async def put_cursor(self, chain: str, key: str, value: str) -> None:
        q = (
            self._upsert(t.chain_cursors)
            .values(chain=chain, key=key, value=value)
            .on_conflict_do_update(index_elements=["chain", "key"], set_={"value": value})
        )
        await self._conn.execute(q)

    async def delete_cursor(self, chain: str, key: str) -> None:
        q = delete(t.chain_cursors).where(t.chain_cursors.c.chain == chain, t.chain_cursors.c.key == key)
        await self._conn.execute(q)

    # event log

    async def append_event(
        self,
        swap_id: str | None,
        kind: str,
        status: str | None,
        payload: Mapping[str, Any],
    ) -> Event:
        """Append to the hash chain. Locks the chain head row, so appends are serial across processes."""
        head = await queries.chain_head(self._conn, for_update=True)
        payload_json = canonical_json(payload)
        seq = head.seq + 1
        created_at = utcnow()
        digest = event_hash(
            seq=seq,
            swap_id=swap_id,
            kind=kind,
            status=status,
            payload=payload_json,
            created_at=created_at,
            prev_hash=head.hash,
        )
        await self._conn.execute(
            insert(t.events).values(
                seq=seq,
                swap_id=swap_id,
                kind=kind,
                status=status,
                payload=payload_json,
                created_at=created_at,
                prev_hash=head.hash,
                hash=digest,
            )
        )
        await self._conn.execute(
            update(t.event_chain_head)
            .where(t.event_chain_head.c.id == t.CHAIN_HEAD_ID)
            .values(seq=seq, hash=digest)
        )
        return Event(seq, swap_id, kind, status, payload_json, created_at, head.hash, digest)
