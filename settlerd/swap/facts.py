"""Recording what an event tells: the facts of ``SwapState``, and the events refused outright."""

from __future__ import annotations

from dataclasses import replace

from .actions import Action, RefundLeg, Watch
from .decide import alert_once, claim_action
from .errors import CancelRefused, TermsMismatch, UnexpectedEvent
from .events import (
    AcceptanceRegistered,
    CancelRequested,
    ClaimBroadcast,
    ClaimSeen,
    Confirmations,
    Event,
    LockBroadcast,
    LockRefused,
    LockSeen,
    RefundBroadcast,
    RefundSeen,
    Reorged,
    Spend,
    Tick,
)
from .state import LegState, SwapState
from .terms import Leg, Role, acceptance_mismatches, lock_mismatches


def apply_event(state: SwapState, event: Event, actions: list[Action]) -> SwapState:
    match event:
        case AcceptanceRegistered():
            return _accept(state, event, actions)
        case CancelRequested():
            return _cancel(state, event)
        case LockSeen():
            return _lock_seen(state, event, actions)
        case Confirmations():
            leg = state.leg(event.leg)
            seen = leg.seen(event.spend)
            if event.htlc_id != leg.htlc_id or seen is None:
                return state
            return state.with_leg(event.leg, leg.with_seen(event.spend, max(seen, event.confirmations)))
        case ClaimSeen():
            return _claim_seen(state, event, actions)
        case RefundSeen():
            return _spend_seen(state, event.leg, event.htlc_id, Spend.REFUND, event.confirmations, actions)
        case Reorged():
            return _reorged(state, event, actions)
        case Tick():
            return state
        case LockBroadcast():
            leg = _requested(state, event.leg, state.role.own_leg, "lock_requested", event)
            if leg.htlc_id is not None and leg.htlc_id != event.htlc_id:
                message = _lock_id_message(state, event, leg.htlc_id)
                alert_once(state, actions, f"lock-id:{event.leg}", message)
                return state.with_leg(event.leg, replace(leg, lock_sent=True))
            return state.with_leg(event.leg, replace(leg, lock_sent=True, htlc_id=event.htlc_id))
        case LockRefused():
            leg = _requested(state, event.leg, state.role.own_leg, "lock_requested", event)
            if leg.lock_sent or leg.htlc_id is not None:
                raise UnexpectedEvent(
                    f"swap {state.swap_id}: lock of leg {event.leg} reported refused after it was broadcast"
                )
            return replace(
                state, cancel_reason=f"our risk checks refused to lock leg {event.leg}: {event.reason}"
            )
        case ClaimBroadcast():
            leg = _requested(state, event.leg, state.role.counter_leg, "claim_requested", event)
            return state.with_leg(event.leg, replace(leg, claim_sent=True))
        case RefundBroadcast():
            leg = _requested(state, event.leg, state.role.own_leg, "refund_requested", event)
            return state.with_leg(event.leg, replace(leg, refund_sent=True))


def _accept(state: SwapState, event: AcceptanceRegistered, actions: list[Action]) -> SwapState:
    if state.accepted:
        if event.terms == state.terms:
            return state
        raise UnexpectedEvent(f"swap {state.swap_id} was already accepted with other terms; keep the first")
    problems = acceptance_mismatches(state.terms, event.terms)
    if problems:
        raise TermsMismatch(problems)
    actions.extend((Watch(Leg.ONE), Watch(Leg.TWO)))
    return replace(state, terms=event.terms, accepted=True)


def _cancel(state: SwapState, event: CancelRequested) -> SwapState:
    own = state.role.own_leg
    if state.leg(own).lock_requested:
        raise CancelRefused(
            f"swap {state.swap_id}: leg {own} may already be locked, so it cannot be cancelled; "
            f"it is refunded after {state.terms.leg(own).deadline.isoformat()} unless it is claimed first"
        )
    return replace(state, cancel_reason=f"cancel requested: {event.reason}")


def _lock_seen(state: SwapState, event: LockSeen, actions: list[Action]) -> SwapState:
    leg = state.leg(event.leg)
    if event.htlc_id in leg.ignored:
        return state
    if event.leg is state.role.own_leg and not leg.lock_requested:
        return state  # not ours (yet): our lock is only ever the one we asked for and broadcast
    problems = lock_mismatches(state.terms.leg(event.leg), event.found)
    if problems or (leg.htlc_id is not None and leg.htlc_id != event.htlc_id):
        why = "; ".join(problems) if problems else f"leg {event.leg} is already HTLC {leg.htlc_id}"
        whose = "our own lock" if event.leg is state.role.own_leg else "the counterparty's lock"
        alert_once(
            state,
            actions,
            f"ignored-lock:{event.leg}:{event.htlc_id}",
            f"swap {state.swap_id}: HTLC {event.htlc_id} on leg {event.leg} ({whose}) is ignored: {why}. "
            "Nothing is answered on it; the swap waits for a correct lock and ends at its deadline.",
        )
        return state.with_leg(event.leg, replace(leg, ignored=leg.ignored | {event.htlc_id}))
    confirmations = event.confirmations if leg.lock is None else max(leg.lock, event.confirmations)
    return state.with_leg(event.leg, replace(leg, htlc_id=event.htlc_id, lock=confirmations))


def _claim_seen(state: SwapState, event: ClaimSeen, actions: list[Action]) -> SwapState:
    if not state.terms.opens(event.preimage):
        alert_once(
            state,
            actions,
            f"bad-preimage:{event.leg}:{event.txid}",
            f"swap {state.swap_id}: claim {event.txid} of leg {event.leg} was reported with a preimage "
            "that does not open the hashlock; it is ignored. Check the chain adapter.",
        )
        return state
    if state.role is Role.INITIATOR and not state.leg2.claim_requested:
        alert_once(
            state,
            actions,
            "secret-leaked",
            f"swap {state.swap_id}: the secret appeared on chain (leg {event.leg}) before we revealed it. "
            "Check where the secret store leaked.",
        )
    learned = state if state.secret is not None else replace(state, secret=event.preimage)
    return _spend_seen(learned, event.leg, event.htlc_id, Spend.CLAIM, event.confirmations, actions)


def _spend_seen(
    state: SwapState, number: Leg, htlc_id: str, spend: Spend, confirmations: int, actions: list[Action]
) -> SwapState:
    leg = state.leg(number)
    if leg.htlc_id is None or htlc_id in leg.ignored:
        return state  # a spend of an HTLC we never knew as this leg is not this leg's
    if leg.spent and leg.seen(spend) is None:
        return state  # the other spend is on the best chain; this one can only follow a reorg of it
    ours = (spend is Spend.CLAIM and number is state.role.counter_leg) or (
        spend is Spend.REFUND and number is state.role.own_leg
    )
    if ours and not (leg.claim_requested if spend is Spend.CLAIM else leg.refund_requested):
        return state  # only we can make this spend, and we never asked for it: not this swap's
    if leg.htlc_id != htlc_id:
        alert_once(
            state,
            actions,
            f"foreign-spend:{number}:{htlc_id}",
            f"swap {state.swap_id}: a {spend} of HTLC {htlc_id} was reported on leg {number}, which is HTLC "
            f"{leg.htlc_id}; it is ignored.",
        )
        return state.with_leg(number, replace(leg, ignored=leg.ignored | {htlc_id}))
    seen = leg.seen(spend)
    depth = confirmations if seen is None else max(seen, confirmations)
    return state.with_leg(number, leg.with_seen(spend, depth))


def _reorged(state: SwapState, event: Reorged, actions: list[Action]) -> SwapState:
    leg = state.leg(event.leg)
    seen = leg.seen(event.undone)
    if event.htlc_id != leg.htlc_id or seen is None:
        return state
    if seen >= state.terms.leg(event.leg).finality_depth:
        alert_once(
            state,
            actions,
            f"deep-reorg:{event.leg}:{event.undone}",
            f"swap {state.swap_id}: a reorg undid the {event.undone} of leg {event.leg} "
            f"at {seen} confirmations, beyond the finality depth "
            f"{state.terms.leg(event.leg).finality_depth}; raise that depth.",
        )
    undone = leg.with_seen(event.undone, None)
    if event.undone is Spend.LOCK:
        undone = replace(undone, claim=None, refund=None)  # its spends left the chain with it
    after = state.with_leg(event.leg, undone)
    # A spend of ours that left the chain is asked for again: the engine rebroadcasts what it journaled.
    htlc_id = leg.htlc_id
    if (
        htlc_id is not None
        and event.undone is Spend.CLAIM
        and leg.claim_requested
        and after.secret is not None
    ):
        actions.append(claim_action(after, event.leg, htlc_id, after.secret))
    if htlc_id is not None and event.undone is Spend.REFUND and leg.refund_requested:
        actions.append(RefundLeg(event.leg, htlc_id))
    return after


def _requested(state: SwapState, number: Leg, expected: Leg, flag: str, event: Event) -> LegState:
    leg = state.leg(number)
    if number is not expected or not getattr(leg, flag):
        raise UnexpectedEvent(
            f"swap {state.swap_id} ({state.role}): {event.kind} for leg {number}, "
            "but no such action was asked for"
        )
    return leg


def _lock_id_message(state: SwapState, event: LockBroadcast, known: str) -> str:
    return (
        f"swap {state.swap_id}: our lock of leg {event.leg} was broadcast as HTLC {event.htlc_id}, but HTLC "
        f"{known} was already seen as this leg; the first one is kept."
    )
