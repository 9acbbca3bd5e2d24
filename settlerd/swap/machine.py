"""The swap state machine: ``step(state, event) -> Step(state, actions, change)``, pure and total.

A step records what the event tells (the facts in ``SwapState``), then recomputes what to do from all
facts and the event's time, as a watcher does on every block: claim, lock, refund or cancel. The status
is derived from the facts; a change of status must be in the transition table or the step raises
``IllegalTransition`` (a defect here, never the input's fault).

Which inputs are refused, and which are ignored:
- Chain events and ticks are never refused. Chain events before the acceptance (nothing is watched
  yet), duplicates, events about an HTLC that is not this leg, and locks with the wrong terms change
  nothing (a wrong lock raises an alert once and is never answered).
- Trade-capture requests and engine results that do not fit the state raise ``UnexpectedEvent``
  (``CancelRefused`` once our funds may be locked; ``TermsMismatch`` for an acceptance that is not the
  offer). Repeating an acceptance with the same terms, a cancel of a cancelled swap, or reporting the
  same broadcast twice is a no-op.
- Once terminal, a swap ignores everything except what must be refused above; a reorg that reaches back
  into an ended swap raises an alert, since it went deeper than the finality depth.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import NamedTuple

from .actions import Action, Alert, ClaimLeg, LockLeg, RefundLeg, Unwatch, Watch
from .errors import CancelRefused, IllegalTransition, TermsMismatch, UnexpectedEvent, UnsafeTerms
from .events import (
    CHAIN_EVENTS,
    AcceptanceRegistered,
    CancelRequested,
    ClaimBroadcast,
    ClaimSeen,
    Confirmations,
    Event,
    EventKind,
    LockBroadcast,
    LockRefused,
    LockSeen,
    RefundBroadcast,
    RefundSeen,
    Reorged,
    Spend,
    Tick,
)
from .policy import DEFAULT_POLICY, Policy, check_leg2_lock, check_timelocks, claim_is_urgent, may_reveal
from .state import LegState, SwapState
from .status import Status, is_terminal, rank
from .table import is_allowed
from .terms import Leg, Role, SwapTerms, acceptance_mismatches, lock_mismatches


class StatusChange(NamedTuple):
    source: Status
    target: Status
    event: EventKind
    reorg: bool  # True when a reorganisation moved the status back: published as such (S5)


class Step(NamedTuple):
    state: SwapState
    actions: tuple[Action, ...]
    change: StatusChange | None  # None when the status stayed


def new_swap(
    swap_id: str,
    role: Role,
    terms: SwapTerms,
    at: datetime,
    *,
    secret: bytes | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> SwapState:
    """A swap in ``offered``: the initiator made the offer (and holds the secret), or the participant
    received it (and knows its own addresses, so its terms are complete)."""
    reasons = check_timelocks(terms, at, policy)
    if role is Role.INITIATOR:
        if secret is None or not terms.opens(secret):
            reasons.append("the initiator's secret must be the preimage of the hashlock")
    else:
        if secret is not None:
            reasons.append("the participant cannot know the secret before it is revealed on chain")
        if not terms.complete:
            reasons.append("the participant's terms must name both parties on both legs")
    if reasons:
        raise UnsafeTerms(reasons)
    return SwapState(
        swap_id=swap_id, role=role, terms=terms, policy=policy, status=Status.OFFERED, now=at, secret=secret
    )


def step(state: SwapState, event: Event) -> Step:
    if is_terminal(state.status):
        return _after_end(state, event)
    actions: list[Action] = []
    current = replace(state, now=event.at) if event.at > state.now else state
    if current.accepted or event.kind not in CHAIN_EVENTS:
        current = _apply(current, event, actions)
    current = _decide(current, actions)
    target = derive_status(current)
    if target is state.status:
        return Step(current, tuple(actions), None)
    reorg = isinstance(event, Reorged)
    if not is_allowed(state.role, state.status, event.kind, target) or (
        rank(target) < rank(state.status) and not reorg
    ):
        raise IllegalTransition(
            f"swap {state.swap_id} ({state.role}): {state.status} -> {target} on {event.kind} "
            "is not in the transition table"
        )
    if is_terminal(target) and current.accepted:
        actions.extend((Unwatch(Leg.ONE), Unwatch(Leg.TWO)))
    change = StatusChange(state.status, target, event.kind, reorg)
    return Step(replace(current, status=target), tuple(actions), change)


def derive_status(state: SwapState) -> Status:
    """The public status the facts amount to: the highest status in ``ORDER`` whose condition holds."""
    if state.cancel_reason is not None:
        return Status.CANCELLED
    initiator = state.role is Role.INITIATOR
    own = state.role.own_leg
    seen, final = state.is_seen, state.is_final
    one, two = Leg.ONE, Leg.TWO
    lock, claim, refund = Spend.LOCK, Spend.CLAIM, Spend.REFUND
    if initiator:
        if final(two, claim) and (final(one, claim) or final(one, refund)):
            return Status.COMPLETED
        # Leg 1 went to the participant, and leg 2 went back to them or can no longer come to us.
        gone = final(two, refund) or (
            state.now >= state.terms.leg2.deadline and not seen(two, claim) and not state.leg2.claim_requested
        )
        if final(one, claim) and gone:
            return Status.FAILED
        if final(one, refund) and not seen(two, claim):
            return Status.REFUNDED
    else:
        if final(one, claim):
            return Status.COMPLETED
        # Leg 2 went to the initiator, and leg 1 went back to them or is not there to claim any more.
        gone = final(one, refund) or (state.now >= state.terms.leg1.deadline and state.leg1.lock is None)
        if final(two, claim) and not seen(one, claim) and gone:
            return Status.FAILED
        if (
            final(two, refund)
            and not seen(one, claim)
            and (not state.leg1.claim_requested or final(one, refund))
        ):
            return Status.REFUNDED
        if seen(one, claim):
            return Status.LEG1_CLAIMED
        if state.leg1.claim_sent:
            return Status.LEG1_CLAIMING
    if seen(two, claim):
        return Status.LEG1_CLAIMED if initiator and seen(one, claim) else Status.LEG2_CLAIMED
    if state.leg(own).refund_sent or seen(own, refund):
        return Status.REFUNDING
    if initiator and state.leg2.claim_sent:
        return Status.LEG2_CLAIMING
    if final(two, lock):
        return Status.LEG2_FINAL
    if seen(two, lock):
        return Status.LEG2_LOCKED
    if not initiator and state.leg2.lock_sent:
        return Status.LEG2_LOCKING
    if final(one, lock):
        return Status.LEG1_FINAL
    if seen(one, lock):
        return Status.LEG1_LOCKED
    if initiator and state.leg1.lock_sent:
        return Status.LEG1_LOCKING
    return Status.ACCEPTED if state.accepted else Status.OFFERED


# Recording what an event tells


def _apply(state: SwapState, event: Event, actions: list[Action]) -> SwapState:
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
                _alert(state, actions, f"lock-id:{event.leg}", _lock_id_message(state, event, leg.htlc_id))
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
        _alert(
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
        _alert(
            state,
            actions,
            f"bad-preimage:{event.leg}:{event.txid}",
            f"swap {state.swap_id}: claim {event.txid} of leg {event.leg} was reported with a preimage "
            "that does not open the hashlock; it is ignored. Check the chain adapter.",
        )
        return state
    if state.role is Role.INITIATOR and not state.leg2.claim_requested:
        _alert(
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
        _alert(
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
        _alert(
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
        actions.append(_claim(after, event.leg, htlc_id, after.secret))
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


def _alert(state: SwapState, actions: list[Action], code: str, message: str) -> None:
    # Raised once per swap and code: ``_decide`` records codes from the actions list in the state.
    if code not in state.alerted and not any(isinstance(a, Alert) and a.code == code for a in actions):
        actions.append(Alert(code, message))


# Deciding what to do, from all facts and the time


def _decide(state: SwapState, actions: list[Action]) -> SwapState:
    if state.cancel_reason is None:
        if not state.accepted:
            reasons = check_timelocks(state.terms, state.now, state.policy)
            if reasons:
                state = replace(
                    state, cancel_reason="the offer expired before it was accepted: " + "; ".join(reasons)
                )
        else:
            if not state.leg(state.role.own_leg).lock_requested:
                state = _decide_lock(state, actions)
            if state.cancel_reason is None:
                state = _decide_refund(_decide_claim(state, actions), actions)
    codes = {a.code for a in actions if isinstance(a, Alert)}
    return replace(state, alerted=state.alerted | codes) if codes else state


def _decide_lock(state: SwapState, actions: list[Action]) -> SwapState:
    if state.role is Role.INITIATOR:
        reasons = check_timelocks(state.terms, state.now, state.policy)
        if reasons:
            return replace(state, cancel_reason="too late to lock leg 1: " + "; ".join(reasons))
        actions.append(LockLeg(Leg.ONE))
        return state.with_leg(Leg.ONE, replace(state.leg1, lock_requested=True))
    # S2: lock leg 2 only on a final, exact leg 1, with enough time left.
    if state.leg1.spent:
        return replace(state, cancel_reason="leg 1 was spent before we locked leg 2")
    reasons = check_leg2_lock(state.terms, state.now, state.policy)
    if reasons:
        return replace(state, cancel_reason="leg 2 can no longer be locked safely: " + "; ".join(reasons))
    if not state.is_final(Leg.ONE, Spend.LOCK):
        return state
    actions.append(LockLeg(Leg.TWO))
    return state.with_leg(Leg.TWO, replace(state.leg2, lock_requested=True))


def _decide_claim(state: SwapState, actions: list[Action]) -> SwapState:
    number = state.role.counter_leg
    leg = state.leg(number)
    if state.secret is None or leg.claim_requested or leg.spent or leg.htlc_id is None or leg.lock is None:
        return state
    # We claim only in a swap we honour: our own lock went out first.
    own = state.leg(state.role.own_leg)
    if not (own.lock_sent or own.lock is not None):
        return state
    # S1: the initiator reveals the secret only on a final, exact leg 2, and not too close to its deadline.
    if state.role is Role.INITIATOR:
        if not state.is_final(Leg.TWO, Spend.LOCK):
            return state
        if not may_reveal(state.terms, state.now, state.policy):
            _alert(
                state,
                actions,
                "too-late-to-reveal",
                f"swap {state.swap_id}: leg 2 is final but its deadline "
                f"{state.terms.leg2.deadline.isoformat()} is less than "
                f"{state.policy.min_time_to_reveal} away; "
                "the secret stays hidden and leg 1 is "
                f"refunded after {state.terms.leg1.deadline.isoformat()}.",
            )
            return state
    actions.append(_claim(state, number, leg.htlc_id, state.secret))
    return state.with_leg(number, replace(leg, claim_requested=True))


def _claim(state: SwapState, number: Leg, htlc_id: str, secret: bytes) -> ClaimLeg:
    deadline = state.terms.leg(number).deadline
    return ClaimLeg(number, htlc_id, secret, deadline, claim_is_urgent(deadline, state.now, state.policy))


def _decide_refund(state: SwapState, actions: list[Action]) -> SwapState:
    # S3: refund as soon as the timelock allows, unless the leg was spent.
    number = state.role.own_leg
    leg = state.leg(number)
    locked = leg.lock_sent or leg.lock is not None
    if leg.refund_requested or leg.spent or not locked or leg.htlc_id is None:
        return state
    if state.now < state.terms.leg(number).deadline:
        return state
    actions.append(RefundLeg(number, leg.htlc_id))
    return state.with_leg(number, replace(leg, refund_requested=True))


# After the end


def _after_end(state: SwapState, event: Event) -> Step:
    if isinstance(event, AcceptanceRegistered):
        raise UnexpectedEvent(f"swap {state.swap_id} already ended as {state.status}; it cannot be accepted")
    if isinstance(event, CancelRequested) and state.status is not Status.CANCELLED:
        raise CancelRefused(
            f"swap {state.swap_id} already ended as {state.status}; there is nothing to cancel"
        )
    if isinstance(event, Reorged) and state.leg(event.leg).seen(event.undone) is not None:
        code = f"reorg-after-end:{event.leg}:{event.undone}"
        if code not in state.alerted:
            alert = Alert(
                code,
                f"swap {state.swap_id} ended as {state.status}, but a reorg undid the {event.undone} of leg "
                f"{event.leg}: it went deeper than the finality depth. Check the leg on chain and raise "
                "the depth.",
            )
            return Step(replace(state, alerted=state.alerted | {code}), (alert,), None)
    return Step(state, (), None)
