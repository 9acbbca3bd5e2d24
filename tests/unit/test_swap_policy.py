"""The timelock policy and the terms checks, at their boundaries."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from fractions import Fraction

import pytest

from settlerd.swap import (
    DEFAULT_POLICY,
    LEG1_CLAIM_MARGIN,
    MIN_LEG2_DURATION,
    MIN_LEG2_WINDOW,
    Leg,
    Policy,
    SwapTerms,
    acceptance_mismatches,
    check_durations,
    check_leg2_lock,
    check_timelocks,
    lock_mismatches,
    may_reveal,
)

from .test_swap_model import LEG2_DEADLINE, T0, agreed_terms, found, offer_terms

H = timedelta(hours=1)


def test_sane_durations_pass() -> None:
    assert check_durations(24 * H, 12 * H) == []
    assert check_timelocks(agreed_terms(), T0) == []


def test_leg2_may_last_exactly_two_thirds_of_leg1() -> None:
    assert check_durations(24 * H, 16 * H) == []
    (reason,) = check_durations(24 * H, 16 * H + timedelta(seconds=1))
    assert "more than 2/3" in reason


def test_leg2_shorter_than_the_minimum_is_refused() -> None:
    assert check_durations(24 * H, MIN_LEG2_DURATION) == []
    (reason,) = check_durations(24 * H, MIN_LEG2_DURATION - timedelta(seconds=1))
    assert "less than the minimum" in reason


def test_the_claim_margin_between_deadlines_is_enforced() -> None:
    policy = Policy(max_leg2_share=Fraction(9, 10))
    assert check_durations(10 * H, 10 * H - LEG1_CLAIM_MARGIN, policy) == []
    reasons = check_durations(10 * H, 10 * H - LEG1_CLAIM_MARGIN + timedelta(seconds=1), policy)
    assert [r for r in reasons if "margin" in r]


def test_check_timelocks_measures_from_now() -> None:
    late = LEG2_DEADLINE - MIN_LEG2_DURATION + timedelta(seconds=1)
    assert check_timelocks(agreed_terms(), late)


def test_leg2_lock_needs_a_window_before_its_deadline() -> None:
    terms = agreed_terms()
    assert check_leg2_lock(terms, LEG2_DEADLINE - MIN_LEG2_WINDOW) == []
    (reason,) = check_leg2_lock(terms, LEG2_DEADLINE - MIN_LEG2_WINDOW + timedelta(seconds=1))
    assert "left before leg 2 deadline" in reason


def test_leg2_lock_refused_when_its_deadline_crowds_leg1() -> None:
    terms = agreed_terms()
    crowded = replace(terms, leg2=replace(terms.leg2, deadline=terms.leg1.deadline - LEG1_CLAIM_MARGIN + H))
    (reason,) = check_leg2_lock(crowded, T0)
    assert "plus the claim margin" in reason


def test_reveal_cut_off() -> None:
    assert may_reveal(agreed_terms(), LEG2_DEADLINE - DEFAULT_POLICY.min_time_to_reveal)
    assert not may_reveal(
        agreed_terms(), LEG2_DEADLINE - DEFAULT_POLICY.min_time_to_reveal + timedelta(seconds=1)
    )


def test_inconsistent_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="min_leg2_window must exceed min_time_to_reveal"):
        Policy(min_leg2_window=H, min_time_to_reveal=2 * H)
    with pytest.raises(ValueError, match="max_leg2_share"):
        Policy(max_leg2_share=Fraction(3, 2))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("chain", "other", "chain"),
        ("asset", "0xfake", "asset"),
        ("hashlock", bytes(32), "hashlock"),
        ("recipient", "mallory", "recipient"),
        ("amount", 59_999_999_999, "amount"),
        ("timelock", int(LEG2_DEADLINE.timestamp()) - 1, "timelock"),
    ],
)
def test_each_wrong_lock_term_is_named(field: str, value: object, expected: str) -> None:
    (reason,) = lock_mismatches(agreed_terms().leg2, found(Leg.TWO, **{field: value}))
    assert reason.startswith(expected)


def test_more_amount_and_a_later_timelock_are_acceptable() -> None:
    agreed = agreed_terms().leg2
    assert (
        lock_mismatches(agreed, found(Leg.TWO, amount=agreed.amount + 1, timelock=agreed.timelock + 60)) == []
    )


def test_acceptance_may_only_fill_in_the_participant() -> None:
    assert acceptance_mismatches(offer_terms(), agreed_terms()) == []
    terms = agreed_terms()
    other_recipient = replace(terms, leg2=replace(terms.leg2, recipient="mallory"))
    (reason,) = acceptance_mismatches(offer_terms(), other_recipient)
    assert reason.startswith("leg 2 recipient")
    assert "acceptance leaves a party address empty" in acceptance_mismatches(offer_terms(), offer_terms())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amount": 0}, "amount must be positive"),
        ({"hashlock": b"short"}, "32 bytes"),
        ({"deadline": datetime(2030, 1, 1)}, "timezone-aware"),
        ({"finality_depth": 0}, "finality depth"),
    ],
)
def test_leg_terms_refuse_nonsense(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(agreed_terms().leg1, **changes)  # type: ignore[arg-type]


def test_both_legs_share_one_hashlock() -> None:
    terms = agreed_terms()
    with pytest.raises(ValueError, match="same hashlock"):
        SwapTerms(terms.leg1, replace(terms.leg2, hashlock=bytes(32)))
