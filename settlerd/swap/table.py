"""The transition table: every status change a swap may make, per role and event kind. A whitelist:
``step`` raises ``IllegalTransition`` for a change that is not here.

An event that leaves the status as it is needs no entry. Reorg entries move backwards in ``ORDER`` on
purpose (the chain took a fact back); every other entry moves forward, which a unit test checks.
Many entries look odd in isolation (a claim seen while a lock is still confirming): chain events arrive
in any order a scanner and a reorg can produce, and the machine must stay total for all of them.
Every entry is exercised by tests/unit/test_swap_transitions.py.
"""

from __future__ import annotations

from typing import NamedTuple

from .events import EventKind as E
from .status import Status as S
from .terms import Role


class Transition(NamedTuple):
    role: Role
    source: S
    event: E
    target: S


_INITIATOR: dict[S, dict[E, set[S]]] = {
    S.OFFERED: {
        E.ACCEPTANCE_REGISTERED: {S.ACCEPTED, S.CANCELLED},
        E.CANCEL_REQUESTED: {S.CANCELLED},
        E.LOCK_SEEN: {S.CANCELLED},
        E.CONFIRMATIONS: {S.CANCELLED},
        E.CLAIM_SEEN: {S.CANCELLED},
        E.REFUND_SEEN: {S.CANCELLED},
        E.REORG: {S.CANCELLED},
        E.TICK: {S.CANCELLED},
    },
    S.ACCEPTED: {
        E.LOCK_SEEN: {S.LEG1_LOCKED, S.LEG1_FINAL, S.LEG2_LOCKED, S.LEG2_FINAL, S.FAILED},
        E.CONFIRMATIONS: {S.FAILED},
        E.CLAIM_SEEN: {S.LEG2_CLAIMED, S.LEG1_CLAIMED, S.COMPLETED, S.FAILED},
        E.REFUND_SEEN: {S.REFUNDING, S.REFUNDED, S.FAILED},
        E.REORG: {S.FAILED},
        E.TICK: {S.FAILED},
        E.LOCK_BROADCAST: {S.LEG1_LOCKING, S.FAILED},
        E.LOCK_REFUSED: {S.CANCELLED},
        E.CLAIM_BROADCAST: {S.LEG2_CLAIMING},
        E.REFUND_BROADCAST: {S.REFUNDING},
    },
    S.LEG1_LOCKING: {
        E.LOCK_SEEN: {S.LEG1_LOCKED, S.LEG1_FINAL, S.LEG2_LOCKED, S.LEG2_FINAL, S.FAILED},
        E.CONFIRMATIONS: {S.FAILED},
        E.CLAIM_SEEN: {S.LEG2_CLAIMED, S.LEG1_CLAIMED, S.COMPLETED, S.FAILED},
        E.REFUND_SEEN: {S.REFUNDING, S.REFUNDED, S.FAILED},
        E.REORG: {S.FAILED},
        E.TICK: {S.FAILED},
        E.LOCK_BROADCAST: {S.FAILED},
        E.CLAIM_BROADCAST: {S.LEG2_CLAIMING},
        E.REFUND_BROADCAST: {S.REFUNDING},
    },
    S.LEG1_LOCKED: {
        E.LOCK_SEEN: {S.LEG1_FINAL, S.LEG2_LOCKED, S.LEG2_FINAL, S.FAILED},
        E.CONFIRMATIONS: {S.LEG1_FINAL, S.FAILED},
        E.CLAIM_SEEN: {S.LEG2_CLAIMED, S.LEG1_CLAIMED, S.COMPLETED, S.FAILED},
        E.REFUND_SEEN: {S.REFUNDING, S.REFUNDED, S.FAILED},
        E.REORG: {S.ACCEPTED, S.LEG1_LOCKING, S.FAILED},
        E.TICK: {S.FAILED},
        E.LOCK_BROADCAST: {S.FAILED},
        E.CLAIM_BROADCAST: {S.LEG2_CLAIMING},
        E.REFUND_BROADCAST: {S.REFUNDING},
    },
    S.LEG1_FINAL: {
        E.LOCK_SEEN: {S.LEG2_LOCKED, S.LEG2_FINAL, S.FAILED},
        E.CONFIRMATIONS: {S.FAILED},
        E.CLAIM_SEEN: {S.LEG2_CLAIMED, S.LEG1_CLAIMED, S.COMPLETED, S.FAILED},
        E.REFUND_SEEN: {S.REFUNDING, S.REFUNDED, S.FAILED},
        E.REORG: {S.ACCEPTED, S.LEG1_LOCKING, S.FAILED},
        E.TICK: {S.FAILED},
        E.LOCK_BROADCAST: {S.FAILED},
        E.CLAIM_BROADCAST: {S.LEG2_CLAIMING},
        E.REFUND_BROADCAST: {S.REFUNDING},
    },
    S.LEG2_LOCKED: {
        E.LOCK_SEEN: {S.LEG2_FINAL, S.FAILED},
        E.CONFIRMATIONS: {S.LEG2_FINAL, S.FAILED},
        E.CLAIM_SEEN: {S.LEG2_CLAIMED, S.LEG1_CLAIMED, S.COMPLETED, S.FAILED},
        E.REFUND_SEEN: {S.REFUNDING, S.REFUNDED, S.FAILED},
        E.REORG: {S.ACCEPTED, S.LEG1_LOCKING, S.LEG1_LOCKED, S.LEG1_FINAL, S.FAILED},
        E.TICK: {S.FAILED},
        E.LOCK_BROADCAST: {S.FAILED},
        E.LOCK_REFUSED: {S.CANCELLED},
        E.CLAIM_BROADCAST: {S.LEG2_CLAIMING},
        E.REFUND_BROADCAST: {S.REFUNDING},
    },
    S.LEG2_FINAL: {
        E.LOCK_SEEN: {S.FAILED},
        E.CONFIRMATIONS: {S.FAILED},
        E.CLAIM_SEEN: {S.LEG2_CLAIMED, S.LEG1_CLAIMED, S.COMPLETED, S.FAILED},
        E.REFUND_SEEN: {S.REFUNDING, S.REFUNDED, S.FAILED},
        E.REORG: {S.ACCEPTED, S.LEG1_LOCKING, S.LEG1_LOCKED, S.LEG1_FINAL, S.FAILED},
        E.TICK: {S.FAILED},
        E.LOCK_BROADCAST: {S.FAILED},
        E.LOCK_REFUSED: {S.CANCELLED},
        E.CLAIM_BROADCAST: {S.LEG2_CLAIMING},
        E.REFUND_BROADCAST: {S.REFUNDING},
    },
    S.LEG2_CLAIMING: {
        E.CONFIRMATIONS: {S.FAILED},
        E.CLAIM_SEEN: {S.LEG2_CLAIMED, S.LEG1_CLAIMED, S.COMPLETED, S.FAILED},
        E.REFUND_SEEN: {S.REFUNDING, S.REFUNDED, S.FAILED},
        E.REFUND_BROADCAST: {S.REFUNDING},
    },
    S.REFUNDING: {
        E.CONFIRMATIONS: {S.REFUNDED, S.FAILED},
        E.CLAIM_SEEN: {S.LEG2_CLAIMED, S.LEG1_CLAIMED, S.COMPLETED, S.FAILED},
        E.REFUND_SEEN: {S.REFUNDED, S.FAILED},
        E.REORG: {
            S.ACCEPTED,
            S.LEG1_LOCKING,
            S.LEG1_LOCKED,
            S.LEG1_FINAL,
            S.LEG2_LOCKED,
            S.LEG2_FINAL,
            S.LEG2_CLAIMING,
        },
    },
    S.LEG2_CLAIMED: {
        E.CONFIRMATIONS: {S.COMPLETED},
        E.CLAIM_SEEN: {S.LEG1_CLAIMED, S.COMPLETED},
        E.REFUND_SEEN: {S.COMPLETED},
        E.REORG: {
            S.ACCEPTED,
            S.LEG1_LOCKING,
            S.LEG1_LOCKED,
            S.LEG1_FINAL,
            S.LEG2_LOCKED,
            S.LEG2_FINAL,
            S.LEG2_CLAIMING,
            S.REFUNDING,
            S.REFUNDED,
        },
    },
    S.LEG1_CLAIMED: {
        E.CONFIRMATIONS: {S.COMPLETED},
        E.CLAIM_SEEN: {S.COMPLETED},
        E.REORG: {
            S.ACCEPTED,
            S.LEG1_LOCKING,
            S.LEG1_LOCKED,
            S.LEG1_FINAL,
            S.LEG2_LOCKED,
            S.LEG2_FINAL,
            S.LEG2_CLAIMING,
            S.REFUNDING,
            S.LEG2_CLAIMED,
        },
    },
}
_PARTICIPANT: dict[S, dict[E, set[S]]] = {
    S.OFFERED: {
        E.ACCEPTANCE_REGISTERED: {S.ACCEPTED, S.CANCELLED},
        E.CANCEL_REQUESTED: {S.CANCELLED},
        E.LOCK_SEEN: {S.CANCELLED},
        E.CONFIRMATIONS: {S.CANCELLED},
        E.CLAIM_SEEN: {S.CANCELLED},
        E.REFUND_SEEN: {S.CANCELLED},
        E.REORG: {S.CANCELLED},
        E.TICK: {S.CANCELLED},
    },
    S.ACCEPTED: {
        E.CANCEL_REQUESTED: {S.CANCELLED},
        E.LOCK_SEEN: {S.LEG1_LOCKED, S.LEG1_FINAL, S.LEG2_LOCKED, S.LEG2_FINAL, S.CANCELLED},
        E.CONFIRMATIONS: {S.CANCELLED},
        E.CLAIM_SEEN: {S.LEG2_CLAIMED, S.LEG1_CLAIMED, S.COMPLETED, S.FAILED, S.CANCELLED},
        E.REFUND_SEEN: {S.REFUNDING, S.REFUNDED, S.CANCELLED},
        E.REORG: {S.CANCELLED},
        E.TICK: {S.CANCELLED},
        E.LOCK_BROADCAST: {S.LEG2_LOCKING},
        E.LOCK_REFUSED: {S.CANCELLED},
        E.CLAIM_BROADCAST: {S.LEG1_CLAIMING},
        E.REFUND_BROADCAST: {S.REFUNDING},
    },
    S.LEG1_LOCKED: {
        E.CANCEL_REQUESTED: {S.CANCELLED},
        E.LOCK_SEEN: {S.LEG1_FINAL, S.LEG2_LOCKED, S.LEG2_FINAL, S.CANCELLED},
        E.CONFIRMATIONS: {S.LEG1_FINAL, S.CANCELLED},
        E.CLAIM_SEEN: {S.LEG2_CLAIMED, S.LEG1_CLAIMED, S.COMPLETED, S.FAILED, S.CANCELLED},
        E.REFUND_SEEN: {S.REFUNDING, S.REFUNDED, S.CANCELLED},
        E.REORG: {S.ACCEPTED, S.CANCELLED},
        E.TICK: {S.CANCELLED},
        E.LOCK_BROADCAST: {S.LEG2_LOCKING},
        E.LOCK_REFUSED: {S.CANCELLED},
        E.CLAIM_BROADCAST: {S.LEG1_CLAIMING},
        E.REFUND_BROADCAST: {S.REFUNDING},
    },
    S.LEG1_FINAL: {
        E.LOCK_SEEN: {S.LEG2_LOCKED, S.LEG2_FINAL},
        E.CLAIM_SEEN: {S.LEG2_CLAIMED, S.LEG1_CLAIMED, S.COMPLETED, S.FAILED},
        E.REFUND_SEEN: {S.REFUNDING, S.REFUNDED},
        E.REORG: {S.ACCEPTED},
        E.LOCK_BROADCAST: {S.LEG2_LOCKING},
        E.LOCK_REFUSED: {S.CANCELLED},
        E.CLAIM_BROADCAST: {S.LEG1_CLAIMING},
        E.REFUND_BROADCAST: {S.REFUNDING},
    },
    S.LEG2_LOCKING: {
        E.LOCK_SEEN: {S.LEG2_LOCKED, S.LEG2_FINAL},
        E.CLAIM_SEEN: {S.LEG2_CLAIMED, S.LEG1_CLAIMED, S.COMPLETED, S.FAILED},
        E.REFUND_SEEN: {S.REFUNDING, S.REFUNDED},
        E.CLAIM_BROADCAST: {S.LEG1_CLAIMING},
        E.REFUND_BROADCAST: {S.REFUNDING},
    },
    S.LEG2_LOCKED: {
        E.LOCK_SEEN: {S.LEG2_FINAL},
        E.CONFIRMATIONS: {S.LEG2_FINAL},
        E.CLAIM_SEEN: {S.LEG2_CLAIMED, S.LEG1_CLAIMED, S.COMPLETED, S.FAILED},
        E.REFUND_SEEN: {S.REFUNDING, S.REFUNDED},
        E.REORG: {S.ACCEPTED, S.LEG1_LOCKED, S.LEG1_FINAL, S.LEG2_LOCKING},
        E.CLAIM_BROADCAST: {S.LEG1_CLAIMING},
        E.REFUND_BROADCAST: {S.REFUNDING},
    },
    S.LEG2_FINAL: {
        E.CLAIM_SEEN: {S.LEG2_CLAIMED, S.LEG1_CLAIMED, S.COMPLETED, S.FAILED},
        E.REFUND_SEEN: {S.REFUNDING, S.REFUNDED},
        E.REORG: {S.ACCEPTED, S.LEG1_LOCKED, S.LEG1_FINAL, S.LEG2_LOCKING},
        E.CLAIM_BROADCAST: {S.LEG1_CLAIMING},
        E.REFUND_BROADCAST: {S.REFUNDING},
    },
    S.REFUNDING: {
        E.CONFIRMATIONS: {S.REFUNDED},
        E.CLAIM_SEEN: {S.LEG2_CLAIMED, S.LEG1_CLAIMED, S.COMPLETED, S.FAILED},
        E.REFUND_SEEN: {S.REFUNDED},
        E.REORG: {S.ACCEPTED, S.LEG1_LOCKED, S.LEG1_FINAL, S.LEG2_LOCKING, S.LEG2_LOCKED, S.LEG2_FINAL},
        E.CLAIM_BROADCAST: {S.LEG1_CLAIMING},
    },
    S.LEG2_CLAIMED: {
        E.LOCK_SEEN: {S.FAILED},
        E.CONFIRMATIONS: {S.FAILED},
        E.CLAIM_SEEN: {S.LEG1_CLAIMED, S.COMPLETED, S.FAILED},
        E.REFUND_SEEN: {S.FAILED},
        E.REORG: {
            S.ACCEPTED,
            S.LEG1_LOCKED,
            S.LEG1_FINAL,
            S.LEG2_LOCKING,
            S.LEG2_LOCKED,
            S.LEG2_FINAL,
            S.REFUNDING,
            S.FAILED,
        },
        E.TICK: {S.FAILED},
        E.LOCK_BROADCAST: {S.FAILED},
        E.CLAIM_BROADCAST: {S.LEG1_CLAIMING, S.FAILED},
        E.REFUND_BROADCAST: {S.FAILED},
    },
    S.LEG1_CLAIMING: {
        E.LOCK_SEEN: {S.FAILED},
        E.CONFIRMATIONS: {S.REFUNDED, S.FAILED},
        E.CLAIM_SEEN: {S.LEG1_CLAIMED, S.COMPLETED, S.FAILED},
        E.REFUND_SEEN: {S.REFUNDED, S.FAILED},
        E.REORG: {S.FAILED},
        E.TICK: {S.FAILED},
        E.LOCK_BROADCAST: {S.FAILED},
        E.CLAIM_BROADCAST: {S.FAILED},
        E.REFUND_BROADCAST: {S.FAILED},
    },
    S.LEG1_CLAIMED: {
        E.CONFIRMATIONS: {S.COMPLETED},
        E.CLAIM_SEEN: {S.COMPLETED},
        E.REORG: {
            S.ACCEPTED,
            S.LEG1_LOCKED,
            S.LEG1_FINAL,
            S.LEG2_LOCKING,
            S.LEG2_LOCKED,
            S.LEG2_FINAL,
            S.REFUNDING,
            S.LEG2_CLAIMED,
            S.LEG1_CLAIMING,
            S.FAILED,
        },
    },
}

TRANSITIONS: frozenset[Transition] = frozenset(
    Transition(role, source, event, target)
    for role, table in ((Role.INITIATOR, _INITIATOR), (Role.PARTICIPANT, _PARTICIPANT))
    for source, by_event in table.items()
    for event, targets in by_event.items()
    for target in targets
)


def is_allowed(role: Role, source: S, event: E, target: S) -> bool:
    return Transition(role, source, event, target) in TRANSITIONS
