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

from .actions import Action, Alert, Unwatch
from .decide import decide, derive_status
from .errors import CancelRefused, IllegalTransition, UnexpectedEvent, UnsafeTerms
from .events import (
    CHAIN_EVENTS,
    AcceptanceRegistered,
    CancelRequested,
    Event,
    EventKind,
    Reorged,
)
from .facts import apply_event
from .policy import DEFAULT_POLICY, Policy, check_timelocks
from .state import SwapState
from .status import Status, is_terminal, rank
from .table import is_allowed
from .terms import Leg, Role, SwapTerms


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
        current = apply_event(current, event, actions)
    current = decide(current, actions)
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
