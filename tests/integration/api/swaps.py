"""Swaps written through the store's own write API, as the engine will write them (it does not exist yet)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from settlerd.store import Event, Leg, Store

SECRET = bytes(range(32))  # a recognisable preimage: no response may ever contain it
WEI_AMOUNT = 60_000 * 10**18 + 1  # past 64 bits: must survive as a decimal string

# A happy path as the initiator sees it: (status, event kind, leg changes).
HAPPY_PATH: list[tuple[str, str, dict[int, dict[str, object]]]] = [
    ("accepted", "acceptance_registered", {}),
    ("leg1_locking", "lock_broadcast", {1: {"lock_txid": "aa" * 32, "htlc_id": "bcrt1qhtlc"}}),
    ("leg1_locked", "lock_seen", {1: {"confirmations": 1}}),
    ("leg1_final", "confirmations", {1: {"confirmations": 6, "final": True}}),
    (
        "leg2_locked",
        "lock_seen",
        {2: {"lock_txid": "bb" * 32, "htlc_id": "0x" + "cd" * 32, "confirmations": 1}},
    ),
    ("leg2_final", "confirmations", {2: {"confirmations": 12, "final": True}}),
    ("leg2_claiming", "claim_broadcast", {2: {"claim_txid": "cc" * 32}}),
    ("leg2_claimed", "claim_seen", {}),
    ("leg1_claimed", "claim_seen", {1: {"claim_txid": "dd" * 32}}),
    ("completed", "confirmations", {}),
]


def legs(swap_id: str, now: datetime) -> list[Leg]:
    hashlock = hashlib.sha256(swap_id.encode()).digest()  # one swap per hashlock: the store refuses a second
    return [
        Leg(
            swap_id=swap_id,
            leg=1,
            chain="bitcoin",
            asset="BTC",
            amount=100_000_000,
            hashlock=hashlock,
            sender="bcrt1qinitiator",
            recipient="bcrt1qparticipant",
            timelock=1_000,
            deadline=now + timedelta(hours=24),
        ),
        Leg(
            swap_id=swap_id,
            leg=2,
            chain="evm",
            asset="USDC",
            amount=WEI_AMOUNT,
            hashlock=hashlock,
            sender="0xparticipant",
            recipient="0xinitiator",
            timelock=1_900_000_000,
            deadline=now + timedelta(hours=12),
        ),
    ]


async def create_swap(
    store: Store, swap_id: str, *, counterparty: str = "desk-b", now: datetime | None = None
) -> Event:
    now = now or datetime.now(UTC)
    async with store.write() as tx:
        await tx.insert_swap(
            swap_id,
            role="initiator",
            status="offered",
            counterparty=counterparty,
            terms={"pair": "BTC/USDC"},
            secret=SECRET,
            now=now,
        )
        for leg in legs(swap_id, now):
            await tx.upsert_leg(leg)
        return await tx.append_event(swap_id, "swap_created", "offered", {"counterparty": counterparty})


async def advance(store: Store, swap_id: str, step: int) -> Event:
    """Apply HAPPY_PATH[step]: the status, the leg changes and the event, in one transaction (S6)."""
    status, kind, changes = HAPPY_PATH[step]
    current = {leg.leg: leg for leg in await store.legs_of(swap_id)}
    async with store.write() as tx:
        await tx.update_swap(swap_id, status=status)
        for number, fields in changes.items():
            await tx.upsert_leg(replace(current[number], **fields))  # type: ignore[arg-type]
        return await tx.append_event(swap_id, kind, status, {"step": step})
