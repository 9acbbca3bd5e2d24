"""A small world to drive the swap state machine in tests: agreed terms, an event alphabet that offers
plausible and implausible events in any state, and a breadth-first explorer of every state reachable
with that alphabet. The transition-table tests and the property tests build on it.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache

from settlerd.swap import (
    AcceptanceRegistered,
    CancelRequested,
    ClaimBroadcast,
    ClaimSeen,
    Confirmations,
    Event,
    FoundHtlc,
    Leg,
    LegTerms,
    LockBroadcast,
    LockRefused,
    LockSeen,
    RefundBroadcast,
    RefundSeen,
    Reorged,
    Role,
    Spend,
    Step,
    SwapState,
    SwapTerms,
    Tick,
    Transition,
    is_terminal,
    new_swap,
    step,
)
from settlerd.swap.errors import UnexpectedEvent
from settlerd.swap.terms import UNKNOWN_PARTY

T0 = datetime(2030, 1, 1, tzinfo=UTC)
SECRET = bytes(range(32))
HASHLOCK = hashlib.sha256(SECRET).digest()
WRONG_SECRET = bytes(32)
LEG1_DEADLINE = T0 + timedelta(hours=24)
LEG2_DEADLINE = T0 + timedelta(hours=12)
# The latest the refunds open: leg 2's plus the 6-hour claim margin still comes before leg 1's deadline.
LEG1_LATEST = T0 + timedelta(hours=26)
LEG2_LATEST = T0 + timedelta(hours=15)
DEPTH = {Leg.ONE: 3, Leg.TWO: 2}

# The HTLC ids the world uses: the real leg, a lock with wrong terms, and a second exact lock.
REAL = {Leg.ONE: "leg1-htlc", Leg.TWO: "leg2-htlc"}
WRONG = {Leg.ONE: "leg1-wrong", Leg.TWO: "leg2-wrong"}
SECOND = {Leg.ONE: "leg1-second", Leg.TWO: "leg2-second"}

# Moments at which deadlines and safety distances flip decisions.
MILESTONES = (
    T0 + timedelta(hours=1),
    LEG2_DEADLINE - timedelta(hours=3),  # leg 2 still lockable, claim not yet urgent
    LEG2_DEADLINE - timedelta(minutes=90),  # too late to lock leg 2, claim urgent, reveal still allowed
    LEG2_DEADLINE - timedelta(minutes=30),  # too late to reveal
    LEG2_DEADLINE,
    LEG1_DEADLINE - timedelta(hours=1),
    LEG1_DEADLINE,
    LEG1_DEADLINE + timedelta(hours=1),
)


def agreed_terms() -> SwapTerms:
    leg1 = LegTerms(
        chain="bitcoin",
        asset="BTC",
        amount=100_000_000,
        hashlock=HASHLOCK,
        recipient="participant-btc",
        sender="initiator-btc",
        timelock=800_144,
        deadline=LEG1_DEADLINE,
        finality_depth=DEPTH[Leg.ONE],
        latest=LEG1_LATEST,
    )
    leg2 = LegTerms(
        chain="evm",
        asset="0xusdc",
        amount=60_000_000_000,
        hashlock=HASHLOCK,
        recipient="initiator-evm",
        sender="participant-evm",
        timelock=int(LEG2_DEADLINE.timestamp()),
        deadline=LEG2_DEADLINE,
        finality_depth=DEPTH[Leg.TWO],
        latest=LEG2_LATEST,
    )
    return SwapTerms(leg1, leg2)


def offer_terms() -> SwapTerms:
    """What the initiator's offer holds: the participant's addresses are not known yet."""
    terms = agreed_terms()
    return SwapTerms(replace(terms.leg1, recipient=UNKNOWN_PARTY), replace(terms.leg2, sender=UNKNOWN_PARTY))


def fresh(role: Role) -> SwapState:
    if role is Role.INITIATOR:
        return new_swap("swap-1", role, offer_terms(), T0, secret=SECRET)
    return new_swap("swap-1", role, agreed_terms(), T0)


def found(leg: Leg, **changes: object) -> FoundHtlc:
    agreed = agreed_terms().leg(leg)
    exact = FoundHtlc(
        agreed.chain, agreed.asset, agreed.amount, agreed.hashlock, agreed.recipient, agreed.timelock
    )
    return replace(exact, **changes)  # type: ignore[arg-type]


def exact_lock(leg: Leg, at: datetime, confirmations: int, htlc_id: str | None = None) -> LockSeen:
    return LockSeen(at, leg, htlc_id or REAL[leg], found(leg), confirmations)


def wrong_locks(leg: Leg, at: datetime) -> list[LockSeen]:
    """One lock per way the terms can be wrong; each must be ignored."""
    agreed = agreed_terms().leg(leg)
    variants = {
        "amount": found(leg, amount=agreed.amount - 1),
        "hashlock": found(leg, hashlock=hashlib.sha256(b"other").digest()),
        "recipient": found(leg, recipient="mallory"),
        "timelock": found(leg, timelock=agreed.timelock - 1),
        "asset": found(leg, asset="0xfake"),
        "chain": found(leg, chain="other-chain"),
    }
    return [
        LockSeen(at, leg, f"{WRONG[leg]}-{name}", htlc, DEPTH[leg] + 5) for name, htlc in variants.items()
    ]


def alphabet(state: SwapState, *, implausible: bool = True, later: bool = True) -> list[Event]:
    """Every event worth trying in ``state``: the world does not care what the swap expects.

    ``implausible`` adds events that must change nothing (wrong-terms locks, a second lock, a claim with
    the wrong preimage). ``later`` also offers each event at the next milestone: every event carries
    its time, so one event can bring news and let a deadline pass at once.
    """
    future = [t for t in MILESTONES if t > state.now]
    events: list[Event] = [Tick(t) for t in future]
    for at in [state.now, *future[:1]] if later else [state.now]:
        events += events_at(state, at, implausible=implausible)
    return events


def events_at(state: SwapState, at: datetime, *, implausible: bool) -> list[Event]:
    events: list[Event] = [CancelRequested(at, "desk changed its mind")]
    if not state.accepted:
        events.append(AcceptanceRegistered(at, agreed_terms()))
    for leg in Leg:
        depth = DEPTH[leg]
        events += [exact_lock(leg, at, 1), exact_lock(leg, at, depth)]
        events += [ClaimSeen(at, leg, REAL[leg], f"claim-{leg}", SECRET, c) for c in (0, depth)]
        events += [RefundSeen(at, leg, REAL[leg], f"refund-{leg}", c) for c in (1, depth)]
        events += [Confirmations(at, leg, REAL[leg], spend, depth) for spend in Spend]
        events += [Reorged(at, leg, REAL[leg], spend) for spend in Spend]
        if implausible:
            events += [exact_lock(leg, at, depth, SECOND[leg]), *wrong_locks(leg, at)]
            events.append(ClaimSeen(at, leg, REAL[leg], f"bad-claim-{leg}", WRONG_SECRET, depth))
    events += engine_results(state, at)
    return events


def engine_results(state: SwapState, now: datetime) -> list[Event]:
    """What the engine can report for the actions asked of it so far."""
    own, counter = state.role.own_leg, state.role.counter_leg
    mine, theirs = state.leg(own), state.leg(counter)
    events: list[Event] = []
    if mine.lock_requested:
        events += [
            LockBroadcast(now, own, f"lock-{own}", REAL[own]),
            LockRefused(now, own, "not enough funds"),
        ]
    if theirs.claim_requested:
        events.append(ClaimBroadcast(now, counter, f"claim-{counter}"))
    if mine.refund_requested:
        events.append(RefundBroadcast(now, own, f"refund-{own}"))
    return events


def try_step(state: SwapState, event: Event) -> Step | None:
    """A step, or None where the machine refuses the event (a request or result that does not fit)."""
    try:
        return step(state, event)
    except UnexpectedEvent:
        return None


def walk(state: SwapState, events: list[Event]) -> Iterator[tuple[SwapState, Event, Step]]:
    for event in events:
        result = step(state, event)
        yield state, event, result
        state = result.state


def abstract(state: SwapState) -> tuple[object, ...]:
    """What decides a swap's future, without the detail (exact depths, alerts raised) that does not."""
    legs = []
    for number, leg in ((Leg.ONE, state.leg1), (Leg.TWO, state.leg2)):
        depth = DEPTH[number]
        legs.append(
            (
                leg.htlc_id is not None,
                *(None if c is None else c >= depth for c in (leg.lock, leg.claim, leg.refund)),
                leg.lock_requested,
                leg.lock_sent,
                leg.claim_requested,
                leg.claim_sent,
                leg.refund_requested,
                leg.refund_sent,
            )
        )
    moment = bisect.bisect_right(MILESTONES, state.now)
    return (state.status, state.accepted, state.cancel_reason is None, state.secret is None, *legs, moment)


@cache
def explore(role: Role) -> dict[Transition, tuple[Event, ...]]:
    """The shortest event path that exercises each status change reachable with ``alphabet``."""
    start = fresh(role)
    witness: dict[Transition, tuple[Event, ...]] = {}
    seen = {abstract(start)}
    queue: deque[tuple[SwapState, tuple[Event, ...]]] = deque([(start, ())])
    while queue:
        state, path = queue.popleft()
        for event in alphabet(state, implausible=False):
            result = try_step(state, event)
            if result is None:
                continue
            if result.change is not None:
                entry = Transition(role, result.change.source, event.kind, result.change.target)
                witness.setdefault(entry, (*path, event))
            key = abstract(result.state)
            if key not in seen and not is_terminal(result.state.status):  # nothing leaves a terminal status
                seen.add(key)
                queue.append((result.state, (*path, event)))
    return witness


def test_explorer_reaches_every_status_of_the_happy_paths() -> None:
    for role in Role:
        reached = {entry.target for entry in explore(role)}
        assert {"completed", "refunded", "cancelled", "failed", "leg2_claimed"} <= {str(s) for s in reached}
