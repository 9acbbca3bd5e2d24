"""Deciding what to do from all facts and the time, and which status the facts amount to.

Recomputed on every event, as a watcher does on every block: what to lock, claim or refund does not
depend on which event came last, only on what is known now.
"""

from __future__ import annotations

from dataclasses import replace

from .actions import Action, Alert, ClaimLeg, LockLeg, RefundLeg
from .events import Spend
from .policy import check_leg2_lock, check_timelocks, claim_is_urgent, may_reveal
from .state import SwapState
from .status import Status
from .terms import Leg, Role


def derive_status(state: SwapState) -> Status:
    """The public status the facts amount to.

    Terminal outcomes first, then the highest status in ``ORDER`` whose condition holds. Each of those
    only grows with new facts, and facts only go away through a reorg: so the status moves backwards only
    on a reorg (S5).
    """
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


def decide(state: SwapState, actions: list[Action]) -> SwapState:
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
            alert_once(
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
    actions.append(claim_action(state, number, leg.htlc_id, state.secret))
    return state.with_leg(number, replace(leg, claim_requested=True))


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


def claim_action(state: SwapState, number: Leg, htlc_id: str, secret: bytes) -> ClaimLeg:
    deadline = state.terms.leg(number).deadline
    return ClaimLeg(number, htlc_id, secret, deadline, claim_is_urgent(deadline, state.now, state.policy))


def alert_once(state: SwapState, actions: list[Action], code: str, message: str) -> None:
    # Raised once per swap and code: ``decide`` records the codes of the actions list in the state.
    if code not in state.alerted and not any(isinstance(a, Alert) and a.code == code for a in actions):
        actions.append(Alert(code, message))
