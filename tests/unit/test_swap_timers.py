"""The engine's deadline heap fires every deadline a full scan of every swap on every tick would have.

The engine steps a swap on a tick only once ``next_deadline`` has come. These properties check that
against the machine itself, on states reached by random event sequences: a tick before that moment
changes nothing but the swap's clock, and a run of ticks stepped only when due produces exactly the
actions, status changes and state of the same ticks stepped every time, refunds and claims included.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from settlerd.swap import AcceptanceRegistered, LockBroadcast, RefundLeg, Role, Step, SwapState, Tick, step
from settlerd.swap.policy import DEFAULT_POLICY
from settlerd.swap.timers import next_deadline

from .test_swap_model import LEG1_DEADLINE, LEG2_DEADLINE, MILESTONES, REAL, T0, agreed_terms, explore, fresh
from .test_swap_properties import random_run, roles

MODEST = settings(max_examples=300, deadline=None)
MICRO = timedelta(microseconds=1)

# Where the policy's comparisons flip, worked out here from its distances rather than taken from the
# module under test, with the microseconds either side where ``<`` and ``<=`` differ.
_POLICY_MOMENTS = (
    LEG1_DEADLINE,
    LEG2_DEADLINE,
    LEG2_DEADLINE - DEFAULT_POLICY.min_leg2_duration,
    LEG2_DEADLINE - DEFAULT_POLICY.min_leg2_window,
    LEG2_DEADLINE - DEFAULT_POLICY.min_time_to_reveal,
    LEG1_DEADLINE - DEFAULT_POLICY.claim_urgent_window,
    LEG2_DEADLINE - DEFAULT_POLICY.claim_urgent_window,
)
EDGES = sorted({m + d * MICRO for m in (*_POLICY_MOMENTS, *MILESTONES) for d in (-1, 0, 1, 2)})
END = LEG1_DEADLINE + timedelta(days=2)

moments = st.one_of(
    st.sampled_from(EDGES),
    st.datetimes(min_value=T0.replace(tzinfo=None), max_value=END.replace(tzinfo=None)).map(
        lambda t: t.replace(tzinfo=T0.tzinfo)
    ),
)


def _only_the_clock_moved(before: SwapState, after: Step) -> bool:
    return replace(after.state, now=before.now) == before and after.actions == () and after.change is None


@MODEST
@given(data=st.data(), role=roles, at=moments)
def test_a_tick_before_the_next_deadline_changes_nothing_but_the_clock(
    data: st.DataObject, role: Role, at: datetime
) -> None:
    state, _ = random_run(data, role)
    due = next_deadline(state)
    if due is not None:
        assert due > state.now
    if due is None or at < due:
        assert _only_the_clock_moved(state, step(state, Tick(at))), (state, at, due)


@MODEST
@given(data=st.data(), role=roles, ticks=st.lists(moments, min_size=1, max_size=20))
def test_ticks_stepped_only_when_due_do_what_ticking_every_swap_does(
    data: st.DataObject, role: Role, ticks: list[datetime]
) -> None:
    start, _ = random_run(data, role)
    scanned, heaped = start, start
    scan_log: list[Step] = []
    heap_log: list[Step] = []
    for at in sorted(t for t in ticks if t > start.now):
        result = step(scanned, Tick(at))
        scanned = result.state
        if result.actions or result.change is not None:
            scan_log.append(result)
        due = next_deadline(heaped)
        if due is not None and due <= at:
            result = step(heaped, Tick(at))
            heaped = result.state
            if result.actions or result.change is not None:
                heap_log.append(result)
    assert heap_log == scan_log
    assert replace(heaped, now=scanned.now) == scanned


def test_a_refund_fires_at_its_deadline_and_not_a_microsecond_before() -> None:
    # The initiator locked leg 1 and nothing else happened: its refund opens at leg 1's deadline.
    own = Role.INITIATOR.own_leg
    state = fresh(Role.INITIATOR)
    state = step(state, AcceptanceRegistered(T0 + timedelta(minutes=1), agreed_terms())).state
    state = step(state, LockBroadcast(T0 + timedelta(minutes=2), own, "lock", REAL[own])).state
    early = step(state, Tick(LEG1_DEADLINE - MICRO))
    assert not [a for a in early.actions if isinstance(a, RefundLeg)]
    assert next_deadline(early.state) == LEG1_DEADLINE
    due = step(early.state, Tick(LEG1_DEADLINE))
    assert [a for a in due.actions if isinstance(a, RefundLeg)]


def test_every_state_on_the_explorers_paths_is_ticked_when_due_and_only_then() -> None:
    # Random runs rarely reach the narrow states (leg 1 claimed, leg 2 not): the explorer's shortest
    # path to every reachable status change passes through each of them.
    checked: set[SwapState] = set()
    for role in Role:
        for path in explore(role).values():
            state = fresh(role)
            for event in path:
                if state not in checked:
                    checked.add(state)
                    due = next_deadline(state)
                    for at in EDGES:
                        if at > state.now and (due is None or at < due):
                            assert _only_the_clock_moved(state, step(state, Tick(at))), (path, state, at)
                state = step(state, event).state
