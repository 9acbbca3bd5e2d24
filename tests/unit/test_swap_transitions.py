"""Every entry of the transition table, for both roles, is exercised by a real event path.

The parameters are the table itself: an entry added without a way to reach it fails here, and a status
change the machine makes without an entry fails in the explorer (``step`` raises IllegalTransition).
"""

from __future__ import annotations

import pytest

from settlerd.swap import (
    TRANSITIONS,
    EventKind,
    Role,
    StatusChange,
    Transition,
    Unwatch,
    is_terminal,
    rank,
    step,
)

from .test_swap_model import explore, fresh


def _id(entry: Transition) -> str:
    return f"{entry.role}:{entry.source}-[{entry.event}]->{entry.target}"


@pytest.mark.parametrize("entry", sorted(TRANSITIONS), ids=_id)
def test_table_entry_is_reached_by_an_event_path(entry: Transition) -> None:
    path = explore(entry.role).get(entry)
    assert path is not None, f"no event path makes {_id(entry)}: give the model a way there or drop the entry"
    state = fresh(entry.role)
    for event in path[:-1]:
        state = step(state, event).state
    assert state.status is entry.source
    result = step(state, path[-1])
    reorg = entry.event is EventKind.REORG
    assert result.change == StatusChange(entry.source, entry.target, entry.event, reorg)
    assert result.state.status is entry.target
    if is_terminal(entry.target) and result.state.accepted:
        assert {action for action in result.actions if isinstance(action, Unwatch)} == {
            Unwatch(1),
            Unwatch(2),
        }


@pytest.mark.parametrize("role", list(Role))
def test_the_table_holds_exactly_the_changes_the_machine_makes(role: Role) -> None:
    assert set(explore(role)) == {entry for entry in TRANSITIONS if entry.role is role}


def test_only_reorgs_move_backwards() -> None:
    for entry in TRANSITIONS:
        if entry.event is not EventKind.REORG:
            assert rank(entry.target) > rank(entry.source), _id(entry)


def test_terminal_statuses_have_no_way_out() -> None:
    assert not [entry for entry in TRANSITIONS if is_terminal(entry.source)]
