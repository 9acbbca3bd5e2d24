"""Property tests: random event sequences, plausible and not, against the invariants S1, S2, S3 and S5.

The checks do not trust the machine's own bookkeeping: an oracle follows the chain events fed in and
knows which HTLCs carry exactly the agreed terms (the model gives wrong-terms locks their own ids).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from settlerd.swap import (
    ClaimBroadcast,
    ClaimLeg,
    ClaimSeen,
    Confirmations,
    Event,
    Leg,
    LockBroadcast,
    LockLeg,
    LockSeen,
    RefundBroadcast,
    RefundLeg,
    RefundSeen,
    Reorged,
    Role,
    Spend,
    Step,
    SwapState,
    Tick,
    is_terminal,
    rank,
    step,
)
from settlerd.swap.policy import LEG1_CLAIM_MARGIN, MIN_LEG2_WINDOW, MIN_TIME_TO_REVEAL

from .test_swap_model import (
    DEPTH,
    LEG1_DEADLINE,
    LEG2_DEADLINE,
    MILESTONES,
    REAL,
    SECOND,
    SECRET,
    events_at,
    fresh,
    try_step,
)

MODEST = settings(max_examples=300, deadline=None)
EXACT_IDS = {REAL[Leg.ONE], SECOND[Leg.ONE], REAL[Leg.TWO], SECOND[Leg.TWO]}


@dataclass
class Oracle:
    """Exact-terms locks on the best chain, by leg and HTLC id, as the fed events describe them."""

    depth: dict[tuple[Leg, str], int] = field(default_factory=dict)
    ever_final: set[tuple[Leg, str]] = field(default_factory=set)

    def feed(self, event: Event) -> None:
        match event:
            case LockSeen() if event.htlc_id in EXACT_IDS:
                key = (event.leg, event.htlc_id)
                self.depth[key] = max(self.depth.get(key, 0), event.confirmations)
            case Confirmations(spend=Spend.LOCK) if (event.leg, event.htlc_id) in self.depth:
                key = (event.leg, event.htlc_id)
                self.depth[key] = max(self.depth[key], event.confirmations)
            case Reorged(undone=Spend.LOCK):
                self.depth.pop((event.leg, event.htlc_id), None)
        for key, depth in self.depth.items():
            if depth >= DEPTH[key[0]]:
                self.ever_final.add(key)

    def final_now(self, leg: Leg, htlc_id: str) -> bool:
        return self.depth.get((leg, htlc_id), 0) >= DEPTH[leg]


History = list[tuple[SwapState, Event, Step, Oracle]]


def random_run(data: st.DataObject, role: Role, length: int = 30) -> tuple[SwapState, History]:
    """Feed up to ``length`` events drawn from the model's alphabet; refused requests are skipped."""
    state = fresh(role)
    oracle = Oracle()
    history: History = []
    for _ in range(data.draw(st.integers(min_value=1, max_value=length), label="length")):
        at = data.draw(st.sampled_from([state.now, *(t for t in MILESTONES if t > state.now)]), label="at")
        event = data.draw(st.sampled_from([*events_at(state, at, implausible=True), Tick(at)]))
        result = try_step(state, event)
        if result is None:
            continue
        oracle.feed(event)
        snapshot = Oracle(dict(oracle.depth), set(oracle.ever_final))
        history.append((state, event, result, snapshot))
        state = result.state
    return state, history


roles = st.sampled_from(list(Role))


@MODEST
@given(data=st.data(), role=roles)
def test_status_never_moves_backwards_except_by_a_reorg(data: st.DataObject, role: Role) -> None:
    _, history = random_run(data, role)
    for before, event, result, _ in history:
        if result.change is not None and not result.change.reorg:
            assert rank(result.state.status) > rank(before.status), (
                before.status,
                event,
                result.state.status,
            )
        if result.change is not None and result.change.reorg:
            assert isinstance(event, Reorged)


@MODEST
@given(data=st.data())
def test_initiator_never_reveals_before_leg2_is_final_with_exact_terms(data: st.DataObject) -> None:
    _, history = random_run(data, Role.INITIATOR)
    revealed = False
    for before, event, result, oracle in history:
        for claim in (a for a in result.actions if isinstance(a, ClaimLeg)):
            assert claim.leg is Leg.TWO
            if not revealed:
                # S1, the first reveal: leg 2 exact and final at this very moment, time left to confirm.
                assert oracle.final_now(Leg.TWO, claim.htlc_id), (before, event)
                assert result.state.now + MIN_TIME_TO_REVEAL <= LEG2_DEADLINE
                assert result.state.leg1.lock_sent or result.state.leg1.lock is not None
            else:
                # Asking again after a reorg undid our claim: the secret is out, the lock was final once.
                assert (Leg.TWO, claim.htlc_id) in oracle.ever_final
            revealed = True


@MODEST
@given(data=st.data())
def test_participant_never_locks_leg2_without_a_final_exact_leg1_and_time(data: st.DataObject) -> None:
    _, history = random_run(data, Role.PARTICIPANT)
    for before, event, result, oracle in history:
        if any(isinstance(a, LockLeg) for a in result.actions):
            now = result.state.now
            assert any(oracle.final_now(Leg.ONE, htlc) for htlc in EXACT_IDS), (before, event)
            assert now + MIN_LEG2_WINDOW <= LEG2_DEADLINE
            assert LEG2_DEADLINE + LEG1_CLAIM_MARGIN <= LEG1_DEADLINE
            assert before.leg1.claim is None and before.leg1.refund is None


@MODEST
@given(data=st.data(), role=roles)
def test_terminal_statuses_stay_terminal(data: st.DataObject, role: Role) -> None:
    _, history = random_run(data, role)
    ended = None
    for _, _, result, _ in history:
        if ended is not None:
            assert result.state.status is ended
            assert not [a for a in result.actions if isinstance(a, (LockLeg, ClaimLeg, RefundLeg))]
        elif is_terminal(result.state.status):
            ended = result.state.status


def _engine_reports(state: SwapState, at: datetime) -> list[Event]:
    own, counter = state.role.own_leg, state.role.counter_leg
    reports: list[Event] = []
    if state.leg(own).lock_requested and not state.leg(own).lock_sent:
        reports.append(LockBroadcast(at, own, "lock-tx", REAL[own]))
    if state.leg(counter).claim_requested and not state.leg(counter).claim_sent:
        reports.append(ClaimBroadcast(at, counter, "claim-tx"))
    if state.leg(own).refund_requested and not state.leg(own).refund_sent:
        reports.append(RefundBroadcast(at, own, "refund-tx"))
    return reports


def _cooperative_chain(state: SwapState, at: datetime) -> list[Event]:
    """The chain confirms what we asked for, and settles what is already on it."""
    events: list[Event] = []
    for leg in Leg:
        facts = state.leg(leg)
        htlc = facts.htlc_id
        if htlc is None:
            continue
        mine = leg is state.role.own_leg
        if facts.claim is not None:
            events.append(Confirmations(at, leg, htlc, Spend.CLAIM, DEPTH[leg]))
        elif facts.refund is not None:
            events.append(Confirmations(at, leg, htlc, Spend.REFUND, DEPTH[leg]))
        elif not mine and facts.claim_requested:
            events.append(ClaimSeen(at, leg, htlc, "claim-tx", SECRET, DEPTH[leg]))
        elif mine and facts.refund_requested:
            events.append(RefundSeen(at, leg, htlc, "refund-tx", DEPTH[leg]))
    return events


@MODEST
@given(data=st.data(), role=roles)
def test_every_swap_ends_once_both_deadlines_pass(data: st.DataObject, role: Role) -> None:
    state, _ = random_run(data, role)
    later = max(state.now, LEG1_DEADLINE) + timedelta(days=1)
    for event in [*_engine_reports(state, later), Tick(later)]:
        state = step(state, event).state
    for event in _engine_reports(state, later):
        state = step(state, event).state
    if is_terminal(state.status):
        return
    own, counter = role.own_leg, role.counter_leg
    # Not over yet: then a refund of our leg or a claim of theirs is under way (or ours was taken).
    assert (
        state.leg(own).refund_requested
        or state.leg(counter).claim_requested
        or state.leg(own).claim is not None
    )
    for _ in range(3):
        for event in _cooperative_chain(state, later):
            state = step(state, event).state
    assert is_terminal(state.status), state
