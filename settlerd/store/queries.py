"""Reads, as functions of a connection, so the store and a write transaction share them."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import Row, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..adapters import Purpose
from . import schema as t
from .rows import HTLC_ID_KEY, ChainHead, Event, Leg, SignedTxRecord, Swap, TxStatus

AnyRow: TypeAlias = Row[*tuple[Any, ...]]

# Every query lists its columns: ``swaps.secret`` must never be selected into a row type.
SWAP_COLUMNS = (
    t.swaps.c.id,
    t.swaps.c.role,
    t.swaps.c.status,
    t.swaps.c.counterparty,
    t.swaps.c.terms,
    t.swaps.c.created_at,
    t.swaps.c.updated_at,
)


def swap_from(row: AnyRow) -> Swap:
    return Swap(
        id=row.id,
        role=row.role,
        status=row.status,
        counterparty=row.counterparty,
        terms=json.loads(row.terms),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def leg_from(row: AnyRow) -> Leg:
    return Leg(
        swap_id=row.swap_id,
        leg=row.leg,
        chain=row.chain,
        asset=row.asset,
        amount=int(row.amount),
        hashlock=bytes.fromhex(row.hashlock),
        sender=row.sender,
        recipient=row.recipient,
        timelock=row.timelock,
        htlc_id=row.htlc_id,
        lock_txid=row.lock_txid,
        claim_txid=row.claim_txid,
        refund_txid=row.refund_txid,
        confirmations=row.confirmations,
        final=bool(row.final),
        deadline=row.deadline,
    )


def signed_tx_from(row: AnyRow) -> SignedTxRecord:
    meta = json.loads(row.meta)
    return SignedTxRecord(
        id=row.id,
        chain=row.chain,
        swap_id=row.swap_id,
        leg=row.leg,
        purpose=Purpose(row.purpose),
        htlc_id=meta.pop(HTLC_ID_KEY, None),
        txid=row.txid,
        raw=bytes(row.raw),
        nonce=row.nonce,
        meta=meta,
        status=TxStatus(row.status),
        created_at=row.created_at,
        broadcast_at=row.broadcast_at,
        confirmed_height=row.confirmed_height,
        replaces=row.replaces,
    )


def event_from(row: AnyRow) -> Event:
    return Event(
        seq=row.seq,
        swap_id=row.swap_id,
        kind=row.kind,
        status=row.status,
        payload_json=row.payload,
        created_at=row.created_at,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


async def get_swap(conn: AsyncConnection, swap_id: str) -> Swap | None:
    row = (await conn.execute(select(*SWAP_COLUMNS).where(t.swaps.c.id == swap_id))).first()
    return swap_from(row) if row is not None else None


async def list_swaps(
    conn: AsyncConnection,
    *,
    status: str | Collection[str] | None,
    not_status: Collection[str] | None,
    counterparty: str | None,
    created_since: datetime | None,
    after: str | None,
    limit: int | None,
) -> list[Swap]:
    q = select(*SWAP_COLUMNS).order_by(t.swaps.c.created_at, t.swaps.c.id)
    if isinstance(status, str):
        q = q.where(t.swaps.c.status == status)
    elif status is not None:
        q = q.where(t.swaps.c.status.in_(list(status)))
    if not_status:
        q = q.where(t.swaps.c.status.not_in(list(not_status)))
    if counterparty is not None:
        q = q.where(t.swaps.c.counterparty == counterparty)
    if created_since is not None:
        q = q.where(t.swaps.c.created_at >= created_since)
    if after is not None:
        anchor = select(t.swaps.c.created_at).where(t.swaps.c.id == after).scalar_subquery()
        q = q.where(
            or_(
                t.swaps.c.created_at > anchor,
                and_(t.swaps.c.created_at == anchor, t.swaps.c.id > after),
            )
        )
    if limit is not None:
        q = q.limit(limit)
    return [swap_from(r) for r in await conn.execute(q)]


async def legs_of(conn: AsyncConnection, swap_id: str) -> list[Leg]:
    q = select(t.legs).where(t.legs.c.swap_id == swap_id).order_by(t.legs.c.leg)
    return [leg_from(r) for r in await conn.execute(q)]


async def legs_of_many(conn: AsyncConnection, swap_ids: Collection[str]) -> dict[str, list[Leg]]:
    """The legs of each of ``swap_ids`` (a page's worth) in one query, in leg order."""
    legs: dict[str, list[Leg]] = {swap_id: [] for swap_id in swap_ids}
    if not legs:
        return legs
    q = select(t.legs).where(t.legs.c.swap_id.in_(list(legs))).order_by(t.legs.c.swap_id, t.legs.c.leg)
    for row in await conn.execute(q):
        legs[row.swap_id].append(leg_from(row))
    return legs


async def events(
    conn: AsyncConnection,
    *,
    after_seq: int,
    swap_id: str | None,
    limit: int | None,
    up_to_seq: int | None = None,
) -> list[Event]:
    q = select(t.events).where(t.events.c.seq > after_seq).order_by(t.events.c.seq)
    if swap_id is not None:
        q = q.where(t.events.c.swap_id == swap_id)
    if up_to_seq is not None:
        q = q.where(t.events.c.seq <= up_to_seq)
    if limit is not None:
        q = q.limit(limit)
    return [event_from(r) for r in await conn.execute(q)]


async def chain_head(conn: AsyncConnection, *, for_update: bool = False) -> ChainHead:
    q = select(t.event_chain_head.c.seq, t.event_chain_head.c.hash).where(
        t.event_chain_head.c.id == t.CHAIN_HEAD_ID
    )
    if for_update:
        q = q.with_for_update()
    row = (await conn.execute(q)).one()
    return ChainHead(seq=row.seq, hash=row.hash)


async def signed_txs(
    conn: AsyncConnection,
    *,
    chain: str | None,
    swap_id: str | None,
    statuses: Sequence[TxStatus] | None,
) -> list[SignedTxRecord]:
    q = select(t.signed_txs).order_by(t.signed_txs.c.id)
    if chain is not None:
        q = q.where(t.signed_txs.c.chain == chain)
    if swap_id is not None:
        q = q.where(t.signed_txs.c.swap_id == swap_id)
    if statuses is not None:
        q = q.where(t.signed_txs.c.status.in_([s.value for s in statuses]))
    return [signed_tx_from(r) for r in await conn.execute(q)]
