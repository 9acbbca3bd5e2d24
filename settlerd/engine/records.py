"""How a swap's state becomes store rows and log entries, and how it is rebuilt from them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from settlerd import swap
from settlerd.adapters import HtlcTerms
from settlerd.store import Event
from settlerd.store import Leg as LegRow
from settlerd.store import Swap as SwapRow
from settlerd.swap import Leg, Spend, SwapState

from . import codec

_TXID_FIELDS = {Spend.LOCK: "lock", Spend.CLAIM: "claim", Spend.REFUND: "refund"}


@dataclass
class LiveSwap:
    """A swap the engine drives: its machine state plus the transaction ids seen for each leg."""

    state: SwapState
    counterparty: str
    txids: dict[tuple[Leg, Spend], str] = field(default_factory=dict)

    def after(self, state: SwapState, event: swap.Event, txid: str | None) -> LiveSwap:
        """The swap once ``event`` moved it to ``state``, with the transaction it names noted."""
        txids = dict(self.txids)
        spend = spend_of(event)
        leg = getattr(event, "leg", None)
        txid = txid or getattr(event, "txid", None)
        if spend is not None and isinstance(leg, Leg) and txid:
            txids[(leg, spend)] = txid
        return LiveSwap(state, self.counterparty, txids)


def spend_of(event: swap.Event) -> Spend | None:
    match event:
        case swap.LockSeen() | swap.LockBroadcast():
            return Spend.LOCK
        case swap.ClaimSeen() | swap.ClaimBroadcast():
            return Spend.CLAIM
        case swap.RefundSeen() | swap.RefundBroadcast():
            return Spend.REFUND
    return None


def swap_document(state: SwapState, created: swap.SwapTerms) -> dict[str, Any]:
    """What the swaps row keeps to rebuild the state: the terms it started with and its policy."""
    return {
        "initial_terms": codec.terms_to_json(created),
        "policy": codec.policy_to_json(state.policy),
        "created_at": state.now.isoformat(),
    }


def htlc_terms(state: SwapState, leg: Leg) -> HtlcTerms:
    return htlc_terms_of(state.terms.leg(leg))


def htlc_terms_of(terms: swap.LegTerms) -> HtlcTerms:
    return HtlcTerms(
        chain=terms.chain,
        asset=terms.asset,
        amount=terms.amount,
        hashlock=terms.hashlock,
        recipient=terms.recipient,
        sender=terms.sender,
        timelock=terms.timelock,
    )


def leg_rows(live: LiveSwap) -> list[LegRow]:
    state = live.state
    rows = []
    for number in (Leg.ONE, Leg.TWO):
        terms, facts = state.terms.leg(number), state.leg(number)
        # The lock's depth: what venues watch for finality. Spends are final when the status says so
        # (completed, refunded), and a leg stops being watched once its swap ended.
        confirmations = facts.lock or 0
        rows.append(
            LegRow(
                swap_id=state.swap_id,
                leg=int(number),
                chain=terms.chain,
                asset=terms.asset,
                amount=terms.amount,
                hashlock=terms.hashlock,
                sender=terms.sender,
                recipient=terms.recipient,
                timelock=terms.timelock,
                htlc_id=facts.htlc_id,
                lock_txid=live.txids.get((number, Spend.LOCK)),
                claim_txid=live.txids.get((number, Spend.CLAIM)),
                refund_txid=live.txids.get((number, Spend.REFUND)),
                confirmations=confirmations,
                final=confirmations >= terms.finality_depth,
                deadline=terms.deadline,
            )
        )
    return rows


def log_payload(event: swap.Event, step: swap.Step, txid: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"event": codec.event_to_json(event)}
    if txid:
        payload["txid"] = txid
    if step.change is not None:
        payload["change"] = {
            "from": step.change.source.value,
            "to": step.change.target.value,
            "reorg": step.change.reorg,
        }
    alerts = [{"code": a.code, "message": a.message} for a in step.actions if isinstance(a, swap.Alert)]
    if alerts:
        payload["alerts"] = alerts
    return payload


def created_payload(live: LiveSwap) -> dict[str, Any]:
    return {"created": {"role": live.state.role.value, "counterparty": live.counterparty}}


def rebuild(row: SwapRow, secret: bytes | None, events: Iterable[Event]) -> LiveSwap:
    """Replay a swap's logged machine events through ``step``: the state exactly as it was left."""
    doc = row.terms
    state = swap.SwapState(
        swap_id=row.id,
        role=swap.Role(row.role),
        terms=codec.terms_from_json(doc["initial_terms"]),
        policy=codec.policy_from_json(doc["policy"]),
        status=swap.Status.OFFERED,
        now=row.created_at,
        secret=secret,
    )
    live = LiveSwap(state=state, counterparty=row.counterparty)
    for logged in events:
        data = logged.payload.get("event")
        if data is None:
            continue
        event = codec.event_from_json(data)
        live = live.after(swap.step(live.state, event).state, event, logged.payload.get("txid"))
    return live
