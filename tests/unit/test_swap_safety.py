"""Whole swaps through the state machine, and the safety rules S1, S2, S3 and S5 one scenario at a time."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from settlerd.swap import (
    AcceptanceRegistered,
    Alert,
    CancelRefused,
    CancelRequested,
    ClaimBroadcast,
    ClaimLeg,
    ClaimSeen,
    Confirmations,
    Event,
    Leg,
    LockBroadcast,
    LockLeg,
    LockRefused,
    LockSeen,
    RefundBroadcast,
    RefundLeg,
    RefundSeen,
    Reorged,
    Role,
    Spend,
    Status,
    Step,
    SwapState,
    TermsMismatch,
    Tick,
    UnexpectedEvent,
    UnsafeTerms,
    Unwatch,
    Watch,
    new_swap,
    step,
)

from .test_swap_model import (
    DEPTH,
    LEG1_DEADLINE,
    LEG2_DEADLINE,
    REAL,
    SECRET,
    T0,
    WRONG_SECRET,
    agreed_terms,
    exact_lock,
    fresh,
    offer_terms,
    wrong_locks,
)

H = timedelta(hours=1)


def run(state: SwapState, *events: Event) -> tuple[SwapState, list[Step]]:
    steps = []
    for event in events:
        result = step(state, event)
        steps.append(result)
        state = result.state
    return state, steps


def accepted(role: Role) -> SwapState:
    return step(fresh(role), AcceptanceRegistered(T0, agreed_terms())).state


def initiator_with_leg1_final() -> SwapState:
    state, _ = run(
        accepted(Role.INITIATOR),
        LockBroadcast(T0, Leg.ONE, "tx1", REAL[Leg.ONE]),
        exact_lock(Leg.ONE, T0 + H, DEPTH[Leg.ONE]),
    )
    assert state.status is Status.LEG1_FINAL
    return state


def participant_with_leg2_locked() -> SwapState:
    state, _ = run(
        accepted(Role.PARTICIPANT),
        exact_lock(Leg.ONE, T0 + H, DEPTH[Leg.ONE]),
        LockBroadcast(T0 + H, Leg.TWO, "tx2", REAL[Leg.TWO]),
        exact_lock(Leg.TWO, T0 + 2 * H, DEPTH[Leg.TWO]),
    )
    assert state.status is Status.LEG2_FINAL
    return state


def kinds(result: Step) -> list[type]:
    return [type(action) for action in result.actions]


def test_initiator_settles_a_swap_end_to_end() -> None:
    state = fresh(Role.INITIATOR)
    assert state.status is Status.OFFERED
    result = step(state, AcceptanceRegistered(T0, agreed_terms()))
    assert result.state.status is Status.ACCEPTED
    assert result.actions == (Watch(Leg.ONE), Watch(Leg.TWO), LockLeg(Leg.ONE))
    state, steps = run(
        result.state,
        LockBroadcast(T0, Leg.ONE, "tx1", REAL[Leg.ONE]),
        exact_lock(Leg.ONE, T0 + H, 1),
        Confirmations(T0 + H, Leg.ONE, REAL[Leg.ONE], Spend.LOCK, DEPTH[Leg.ONE]),
        exact_lock(Leg.TWO, T0 + 2 * H, 1),
    )
    assert [s.state.status for s in steps] == [
        Status.LEG1_LOCKING,
        Status.LEG1_LOCKED,
        Status.LEG1_FINAL,
        Status.LEG2_LOCKED,
    ]
    assert not [a for s in steps for a in s.actions]  # nothing to do until leg 2 is final
    final = step(state, Confirmations(T0 + 3 * H, Leg.TWO, REAL[Leg.TWO], Spend.LOCK, DEPTH[Leg.TWO]))
    assert final.state.status is Status.LEG2_FINAL
    (claim,) = final.actions
    assert claim == ClaimLeg(Leg.TWO, REAL[Leg.TWO], SECRET, LEG2_DEADLINE, urgent=False)
    state, steps = run(
        final.state,
        ClaimBroadcast(T0 + 3 * H, Leg.TWO, "claim2"),
        ClaimSeen(T0 + 3 * H, Leg.TWO, REAL[Leg.TWO], "claim2", SECRET, 1),
        ClaimSeen(T0 + 4 * H, Leg.ONE, REAL[Leg.ONE], "claim1", SECRET, 1),
        Confirmations(T0 + 5 * H, Leg.TWO, REAL[Leg.TWO], Spend.CLAIM, DEPTH[Leg.TWO]),
        Confirmations(T0 + 5 * H, Leg.ONE, REAL[Leg.ONE], Spend.CLAIM, DEPTH[Leg.ONE]),
    )
    assert [s.state.status for s in steps] == [
        Status.LEG2_CLAIMING,
        Status.LEG2_CLAIMED,
        Status.LEG1_CLAIMED,
        Status.LEG1_CLAIMED,
        Status.COMPLETED,
    ]
    assert steps[-1].actions == (Unwatch(Leg.ONE), Unwatch(Leg.TWO))


def test_participant_settles_a_swap_end_to_end() -> None:
    result = step(fresh(Role.PARTICIPANT), AcceptanceRegistered(T0, agreed_terms()))
    assert result.actions == (Watch(Leg.ONE), Watch(Leg.TWO))
    state, steps = run(
        result.state,
        exact_lock(Leg.ONE, T0 + H, 1),
        Confirmations(T0 + H, Leg.ONE, REAL[Leg.ONE], Spend.LOCK, DEPTH[Leg.ONE]),
    )
    assert [s.state.status for s in steps] == [Status.LEG1_LOCKED, Status.LEG1_FINAL]
    assert steps[0].actions == () and steps[1].actions == (LockLeg(Leg.TWO),)
    state, steps = run(
        state,
        LockBroadcast(T0 + H, Leg.TWO, "tx2", REAL[Leg.TWO]),
        exact_lock(Leg.TWO, T0 + 2 * H, DEPTH[Leg.TWO]),
        ClaimSeen(T0 + 3 * H, Leg.TWO, REAL[Leg.TWO], "claim2", SECRET, 0),
    )
    assert [s.state.status for s in steps] == [Status.LEG2_LOCKING, Status.LEG2_FINAL, Status.LEG2_CLAIMED]
    assert steps[-1].actions == (ClaimLeg(Leg.ONE, REAL[Leg.ONE], SECRET, LEG1_DEADLINE, urgent=False),)
    state, steps = run(
        state,
        ClaimBroadcast(T0 + 3 * H, Leg.ONE, "claim1"),
        ClaimSeen(T0 + 4 * H, Leg.ONE, REAL[Leg.ONE], "claim1", SECRET, DEPTH[Leg.ONE]),
    )
    assert [s.state.status for s in steps] == [Status.LEG1_CLAIMING, Status.COMPLETED]


# S1


@pytest.mark.parametrize("lock", wrong_locks(Leg.TWO, T0 + 2 * H), ids=lambda lock: lock.htlc_id)
def test_initiator_never_answers_a_leg2_lock_with_wrong_terms(lock: LockSeen) -> None:
    state = initiator_with_leg1_final()
    result = step(state, lock)
    assert result.state.status is Status.LEG1_FINAL
    assert kinds(result) == [Alert]
    # Deeper and again: ignored silently, never claimed.
    again = step(result.state, replace(lock, confirmations=lock.confirmations + 10))
    assert again.actions == () and again.state == result.state
    # The swap waits, then refunds leg 1 as soon as its deadline passes.
    before = step(again.state, Tick(LEG1_DEADLINE - timedelta(seconds=1)))
    assert before.actions == ()
    refund = step(before.state, Tick(LEG1_DEADLINE))
    assert refund.actions == (RefundLeg(Leg.ONE, REAL[Leg.ONE]),)


def test_initiator_does_not_reveal_before_leg2_is_final() -> None:
    state = initiator_with_leg1_final()
    state, steps = run(state, exact_lock(Leg.TWO, T0 + 2 * H, DEPTH[Leg.TWO] - 1), Tick(T0 + 3 * H))
    assert all(s.actions == () for s in steps)
    assert state.status is Status.LEG2_LOCKED


def test_initiator_does_not_reveal_too_close_to_leg2_deadline() -> None:
    state = initiator_with_leg1_final()
    late = LEG2_DEADLINE - timedelta(minutes=30)
    result = step(state, exact_lock(Leg.TWO, late, DEPTH[Leg.TWO]))
    assert result.state.status is Status.LEG2_FINAL
    assert [a.code for a in result.actions if isinstance(a, Alert)] == ["too-late-to-reveal"]
    assert not [a for a in result.actions if isinstance(a, ClaimLeg)]
    refund = step(result.state, Tick(LEG1_DEADLINE))
    assert refund.actions == (RefundLeg(Leg.ONE, REAL[Leg.ONE]),)


def test_initiator_claim_close_to_the_deadline_is_urgent() -> None:
    state = initiator_with_leg1_final()
    result = step(state, exact_lock(Leg.TWO, LEG2_DEADLINE - timedelta(minutes=90), DEPTH[Leg.TWO]))
    (claim,) = result.actions
    assert isinstance(claim, ClaimLeg) and claim.urgent


def test_reorg_of_leg2_before_final_reveals_nothing_and_waits_again() -> None:
    state = initiator_with_leg1_final()
    state = step(state, exact_lock(Leg.TWO, T0 + 2 * H, 1)).state
    result = step(state, Reorged(T0 + 2 * H, Leg.TWO, REAL[Leg.TWO], Spend.LOCK))
    assert result.change is not None and result.change.reorg
    assert (result.change.source, result.change.target) == (Status.LEG2_LOCKED, Status.LEG1_FINAL)
    assert result.actions == ()
    # Depth reported for the vanished lock counts for nothing.
    result = step(result.state, Confirmations(T0 + 3 * H, Leg.TWO, REAL[Leg.TWO], Spend.LOCK, 10))
    assert result.actions == () and result.state.status is Status.LEG1_FINAL


# S2


@pytest.mark.parametrize("lock", wrong_locks(Leg.ONE, T0 + H), ids=lambda lock: lock.htlc_id)
def test_participant_never_locks_on_a_leg1_with_wrong_terms(lock: LockSeen) -> None:
    result = step(accepted(Role.PARTICIPANT), lock)
    assert result.state.status is Status.ACCEPTED
    assert kinds(result) == [Alert]
    # When the window to lock leg 2 safely has closed, the participant gives up with nothing at stake.
    state, steps = run(result.state, Tick(LEG2_DEADLINE - 3 * H), Tick(LEG2_DEADLINE - timedelta(minutes=90)))
    assert steps[0].actions == ()
    assert state.status is Status.CANCELLED
    assert not [a for s in steps for a in s.actions if isinstance(a, LockLeg)]
    assert state.cancel_reason is not None and "can no longer be locked safely" in state.cancel_reason


def test_participant_does_not_lock_when_leg1_becomes_final_too_late() -> None:
    state = step(accepted(Role.PARTICIPANT), exact_lock(Leg.ONE, T0 + H, 1)).state
    late = LEG2_DEADLINE - timedelta(minutes=90)  # less than MIN_LEG2_WINDOW left
    result = step(state, Confirmations(late, Leg.ONE, REAL[Leg.ONE], Spend.LOCK, DEPTH[Leg.ONE]))
    assert result.state.status is Status.CANCELLED
    assert LockLeg(Leg.TWO) not in result.actions


def test_participant_does_not_lock_before_leg1_is_final() -> None:
    state, steps = run(accepted(Role.PARTICIPANT), exact_lock(Leg.ONE, T0 + H, DEPTH[Leg.ONE] - 1))
    assert steps[0].actions == () and state.status is Status.LEG1_LOCKED


def test_reorg_of_leg1_before_final_sends_the_participant_back_to_waiting() -> None:
    state = step(accepted(Role.PARTICIPANT), exact_lock(Leg.ONE, T0 + H, 1)).state
    result = step(state, Reorged(T0 + H, Leg.ONE, REAL[Leg.ONE], Spend.LOCK))
    assert result.change is not None and result.change.reorg
    assert result.state.status is Status.ACCEPTED and result.actions == ()


# S3


def test_participant_claims_as_soon_as_the_secret_is_on_chain_urgently_near_the_deadline() -> None:
    state = participant_with_leg2_locked()
    late = LEG1_DEADLINE - H
    result = step(state, ClaimSeen(late, Leg.TWO, REAL[Leg.TWO], "claim2", SECRET, 0))
    assert result.actions == (ClaimLeg(Leg.ONE, REAL[Leg.ONE], SECRET, LEG1_DEADLINE, urgent=True),)


def test_a_claim_with_the_wrong_preimage_teaches_nothing() -> None:
    state = participant_with_leg2_locked()
    result = step(state, ClaimSeen(T0 + 3 * H, Leg.TWO, REAL[Leg.TWO], "claim2", WRONG_SECRET, 1))
    assert kinds(result) == [Alert]
    assert result.state.secret is None and result.state.status is Status.LEG2_FINAL


def test_participant_refunds_leg2_at_its_deadline_and_a_late_claim_still_wins() -> None:
    state = participant_with_leg2_locked()
    assert step(state, Tick(LEG2_DEADLINE - timedelta(seconds=1))).actions == ()
    refund = step(state, Tick(LEG2_DEADLINE))
    assert refund.actions == (RefundLeg(Leg.TWO, REAL[Leg.TWO]),)
    state = step(refund.state, RefundBroadcast(LEG2_DEADLINE, Leg.TWO, "refund2")).state
    assert state.status is Status.REFUNDING
    # The initiator's claim was mined first after all: take leg 1 with the secret.
    race = step(state, ClaimSeen(LEG2_DEADLINE + H, Leg.TWO, REAL[Leg.TWO], "claim2", SECRET, 1))
    assert race.state.status is Status.LEG2_CLAIMED
    assert [type(a) for a in race.actions] == [ClaimLeg]


def test_participant_refund_ends_as_refunded() -> None:
    state = participant_with_leg2_locked()
    state, _ = run(
        state,
        Tick(LEG2_DEADLINE),
        RefundBroadcast(LEG2_DEADLINE, Leg.TWO, "refund2"),
        RefundSeen(LEG2_DEADLINE + H, Leg.TWO, REAL[Leg.TWO], "refund2", DEPTH[Leg.TWO]),
    )
    assert state.status is Status.REFUNDED


def test_initiator_whose_leg1_is_claimed_while_leg2_is_refunded_ends_as_failed() -> None:
    state = initiator_with_leg1_final()
    state, _ = run(
        state,
        exact_lock(Leg.TWO, T0 + 2 * H, DEPTH[Leg.TWO]),
        ClaimBroadcast(T0 + 2 * H, Leg.TWO, "claim2"),
        ClaimSeen(T0 + 3 * H, Leg.ONE, REAL[Leg.ONE], "claim1", SECRET, DEPTH[Leg.ONE]),
        RefundSeen(LEG2_DEADLINE, Leg.TWO, REAL[Leg.TWO], "refund2", DEPTH[Leg.TWO]),
    )
    assert state.status is Status.FAILED


# Inputs that are refused, and inputs that are no-ops


def test_duplicate_chain_events_change_nothing() -> None:
    state = initiator_with_leg1_final()
    again = step(state, exact_lock(Leg.ONE, T0 + H, DEPTH[Leg.ONE]))
    assert again == Step(state, (), None)


def test_engine_results_for_actions_never_asked_for_are_refused() -> None:
    state = accepted(Role.INITIATOR)
    with pytest.raises(UnexpectedEvent):
        step(state, ClaimBroadcast(T0, Leg.TWO, "claim2"))
    with pytest.raises(UnexpectedEvent):
        step(state, RefundBroadcast(T0, Leg.ONE, "refund1"))
    with pytest.raises(UnexpectedEvent):
        step(state, LockBroadcast(T0, Leg.TWO, "tx2", REAL[Leg.TWO]))


def test_lock_refused_by_risk_checks_cancels_with_the_reason() -> None:
    result = step(accepted(Role.INITIATOR), LockRefused(T0, Leg.ONE, "balance below 1 BTC"))
    assert result.state.status is Status.CANCELLED
    assert result.state.cancel_reason is not None and "balance below 1 BTC" in result.state.cancel_reason
    assert result.actions == (Unwatch(Leg.ONE), Unwatch(Leg.TWO))


def test_cancel_is_refused_once_our_lock_may_exist() -> None:
    with pytest.raises(CancelRefused, match="refunded after"):
        step(accepted(Role.INITIATOR), CancelRequested(T0, "desk"))
    cancelled = step(fresh(Role.INITIATOR), CancelRequested(T0, "desk")).state
    assert cancelled.status is Status.CANCELLED
    assert step(cancelled, CancelRequested(T0, "again")) == Step(cancelled, (), None)


def test_acceptance_must_be_the_offer_with_the_participant_filled_in() -> None:
    terms = agreed_terms()
    changed = replace(terms, leg2=replace(terms.leg2, amount=terms.leg2.amount - 1))
    with pytest.raises(TermsMismatch, match="leg 2 amount"):
        step(fresh(Role.INITIATOR), AcceptanceRegistered(T0, changed))


def test_unsafe_terms_create_no_swap() -> None:
    terms = agreed_terms()
    too_long = replace(terms, leg2=replace(terms.leg2, deadline=LEG1_DEADLINE - H, latest=LEG1_DEADLINE))
    with pytest.raises(UnsafeTerms) as raised:
        new_swap("s", Role.PARTICIPANT, too_long, T0)
    assert any("more than 2/3" in reason for reason in raised.value.reasons)
    with pytest.raises(UnsafeTerms, match="preimage"):
        new_swap("s", Role.INITIATOR, offer_terms(), T0, secret=WRONG_SECRET)
    with pytest.raises(UnsafeTerms, match="cannot know the secret"):
        new_swap("s", Role.PARTICIPANT, terms, T0, secret=SECRET)


def test_an_offer_not_accepted_in_time_expires() -> None:
    result = step(fresh(Role.INITIATOR), Tick(LEG2_DEADLINE - 2 * H))
    assert result.state.status is Status.CANCELLED


def test_a_reorg_after_the_end_is_reported_but_changes_nothing() -> None:
    state = participant_with_leg2_locked()
    state, _ = run(
        state,
        ClaimSeen(T0 + 3 * H, Leg.TWO, REAL[Leg.TWO], "claim2", SECRET, 0),
        ClaimBroadcast(T0 + 3 * H, Leg.ONE, "claim1"),
        ClaimSeen(T0 + 4 * H, Leg.ONE, REAL[Leg.ONE], "claim1", SECRET, DEPTH[Leg.ONE]),
    )
    assert state.status is Status.COMPLETED
    result = step(state, Reorged(T0 + 5 * H, Leg.ONE, REAL[Leg.ONE], Spend.CLAIM))
    assert result.state.status is Status.COMPLETED and kinds(result) == [Alert]
    assert step(result.state, Reorged(T0 + 5 * H, Leg.ONE, REAL[Leg.ONE], Spend.CLAIM)).actions == ()


def test_a_reorged_claim_of_ours_is_asked_for_again() -> None:
    state = participant_with_leg2_locked()
    state, _ = run(
        state,
        ClaimSeen(T0 + 3 * H, Leg.TWO, REAL[Leg.TWO], "claim2", SECRET, 0),
        ClaimBroadcast(T0 + 3 * H, Leg.ONE, "claim1"),
        ClaimSeen(T0 + 4 * H, Leg.ONE, REAL[Leg.ONE], "claim1", SECRET, 1),
    )
    result = step(state, Reorged(T0 + 4 * H, Leg.ONE, REAL[Leg.ONE], Spend.CLAIM))
    assert result.change is not None and result.change.reorg
    assert result.state.status is Status.LEG1_CLAIMING
    assert [type(a) for a in result.actions] == [ClaimLeg]


def test_time_never_runs_backwards_for_a_swap() -> None:
    state = step(accepted(Role.INITIATOR), Tick(T0 + 5 * H)).state
    assert step(state, Tick(T0)).state.now == T0 + 5 * H


def test_the_secret_never_appears_in_printed_state_actions_or_events() -> None:
    state = participant_with_leg2_locked()
    seen = ClaimSeen(T0 + 3 * H, Leg.TWO, REAL[Leg.TWO], "claim2", SECRET, 0)
    result = step(state, seen)
    for text in (repr(result.state), repr(result.actions), repr(seen), repr(fresh(Role.INITIATOR))):
        assert SECRET.hex() not in text and repr(SECRET) not in text


def _at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_policy_boundaries_for_locking_leg2() -> None:
    state = step(accepted(Role.PARTICIPANT), exact_lock(Leg.ONE, _at(1), 1)).state
    just_in_time = LEG2_DEADLINE - timedelta(hours=2)  # exactly MIN_LEG2_WINDOW left
    result = step(state, Confirmations(just_in_time, Leg.ONE, REAL[Leg.ONE], Spend.LOCK, DEPTH[Leg.ONE]))
    assert LockLeg(Leg.TWO) in result.actions
