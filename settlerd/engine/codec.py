"""JSON forms of the swap domain: terms, policy and state-machine events.

A swap's state is never stored as such: the event log holds every machine event that changed it, and
the state is rebuilt on start-up by replaying them through the pure ``step`` (the same code that made
it), so a stored state can never disagree with the machine.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from settlerd import swap
from settlerd.swap import Leg, Spend
from settlerd.swap.terms import FoundHtlc, LegTerms, SwapTerms

Json = dict[str, Any]


def leg_terms_to_json(leg: LegTerms) -> Json:
    return {
        "chain": leg.chain,
        "asset": leg.asset,
        "amount": str(leg.amount),
        "hashlock": leg.hashlock.hex(),
        "recipient": leg.recipient,
        "sender": leg.sender,
        "timelock": leg.timelock,
        "deadline": leg.deadline.isoformat(),
        "finality_depth": leg.finality_depth,
        "latest": None if leg.latest is None else leg.latest.isoformat(),
    }


def leg_terms_from_json(data: Json) -> LegTerms:
    return LegTerms(
        chain=str(data["chain"]),
        asset=str(data["asset"]),
        amount=int(data["amount"]),
        hashlock=bytes.fromhex(data["hashlock"]),
        recipient=str(data["recipient"]),
        sender=str(data["sender"]),
        timelock=int(data["timelock"]),
        deadline=datetime.fromisoformat(data["deadline"]),
        finality_depth=int(data["finality_depth"]),
        # Absent from terms stored before both bounds were kept: unknown, and the policy locks nothing on it.
        latest=datetime.fromisoformat(data["latest"]) if data.get("latest") else None,
    )


def terms_to_json(terms: SwapTerms) -> Json:
    return {"leg1": leg_terms_to_json(terms.leg1), "leg2": leg_terms_to_json(terms.leg2)}


def terms_from_json(data: Json) -> SwapTerms:
    return SwapTerms(leg_terms_from_json(data["leg1"]), leg_terms_from_json(data["leg2"]))


def policy_to_json(policy: swap.Policy) -> Json:
    out: Json = {}
    for f in dataclasses.fields(policy):
        value = getattr(policy, f.name)
        out[f.name] = value.total_seconds() if isinstance(value, timedelta) else str(value)
    return out


def policy_from_json(data: Json) -> swap.Policy:
    values: Json = {}
    for f in dataclasses.fields(swap.Policy):
        raw = data[f.name]
        values[f.name] = Fraction(raw) if f.name == "max_leg2_share" else timedelta(seconds=float(raw))
    return swap.Policy(**values)


def _found_to_json(found: FoundHtlc) -> Json:
    return {
        "chain": found.chain,
        "asset": found.asset,
        "amount": str(found.amount),
        "hashlock": found.hashlock.hex(),
        "recipient": found.recipient,
        "timelock": found.timelock,
    }


def _found_from_json(data: Json) -> FoundHtlc:
    return FoundHtlc(
        chain=data["chain"],
        asset=data["asset"],
        amount=int(data["amount"]),
        hashlock=bytes.fromhex(data["hashlock"]),
        recipient=data["recipient"],
        timelock=int(data["timelock"]),
    )


_EVENT_TYPES: dict[str, type[swap.Event]] = {
    cls.kind.value: cls
    for cls in (
        swap.AcceptanceRegistered,
        swap.CancelRequested,
        swap.LockSeen,
        swap.Confirmations,
        swap.ClaimSeen,
        swap.RefundSeen,
        swap.Reorged,
        swap.Tick,
        swap.LockBroadcast,
        swap.LockRefused,
        swap.ClaimBroadcast,
        swap.RefundBroadcast,
    )
}


def event_to_json(event: swap.Event) -> Json:
    """The event as stored in the log. A claim's preimage is public on chain by the time it is seen."""
    out: Json = {"kind": event.kind.value}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, SwapTerms):
            value = terms_to_json(value)
        elif isinstance(value, FoundHtlc):
            value = _found_to_json(value)
        elif isinstance(value, bytes):
            value = value.hex()
        elif isinstance(value, (Leg, Spend)):
            value = value.value
        out[f.name] = value
    return out


def event_from_json(data: Json) -> swap.Event:
    cls = _EVENT_TYPES[data["kind"]]
    values: Json = {}
    for f in dataclasses.fields(cls):
        raw = data[f.name]
        if f.name == "at":
            values[f.name] = datetime.fromisoformat(raw)
        elif f.name == "terms":
            values[f.name] = terms_from_json(raw)
        elif f.name == "found":
            values[f.name] = _found_from_json(raw)
        elif f.name == "preimage":
            values[f.name] = bytes.fromhex(raw)
        elif f.name == "leg":
            values[f.name] = Leg(raw)
        elif f.name == "undone":
            values[f.name] = Spend(raw)
        else:
            values[f.name] = raw
    return cls(**values)
