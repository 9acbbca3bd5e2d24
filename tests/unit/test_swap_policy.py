"""The timelock policy and the terms checks, at their boundaries."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from fractions import Fraction

import pytest

from settlerd.engine import codec
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
    leg1_deadline,
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


def test_leg2_lock_refused_when_its_latest_refund_time_crowds_leg1() -> None:
    terms = agreed_terms()
    edge = terms.leg1.deadline - LEG1_CLAIM_MARGIN
    assert check_leg2_lock(replace(terms, leg2=replace(terms.leg2, latest=edge)), T0) == []
    # Leg 2's deadline (earliest) is well clear; its latest refund time is what the secret can wait for.
    crowded = replace(terms, leg2=replace(terms.leg2, latest=edge + timedelta(seconds=1)))
    (reason,) = check_leg2_lock(crowded, T0)
    assert "plus the claim margin" in reason
    assert check_timelocks(crowded, T0) == [reason]


def test_terms_without_a_latest_refund_time_lock_nothing() -> None:
    terms = agreed_terms()
    unknown = replace(terms, leg2=replace(terms.leg2, latest=None))
    (reason,) = check_leg2_lock(unknown, T0)
    assert "unknown" in reason
    assert check_timelocks(unknown, T0) == [reason]


def test_leg1_is_lengthened_past_leg2s_latest_refund_time() -> None:
    policy = Policy()
    assert leg1_deadline(T0, 24 * H, T0 + 12 * H, T0 + 14 * H, policy) == T0 + 24 * H
    # S2: leg 2's refund may open as late as 30 h; the margin and a quarter of it come after that.
    assert (
        leg1_deadline(T0, 24 * H, T0 + 12 * H, T0 + 30 * H, policy) == T0 + 30 * H + LEG1_CLAIM_MARGIN * 5 / 4
    )
    # Leg 2 rounded up to whole blocks: leg 1 keeps it within two thirds.
    assert leg1_deadline(T0, 24 * H, T0 + 17 * H, T0 + 17 * H, policy) == T0 + 25 * H + 30 * timedelta(
        minutes=1
    )


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


def test_both_bounds_are_stored_and_old_terms_replay_without_a_latest() -> None:
    terms = agreed_terms()
    stored = codec.terms_to_json(terms)
    assert codec.terms_from_json(stored) == terms
    # Terms written before the latest refund time was kept: unknown, so S2 refuses to lock on them.
    old = {leg: {k: v for k, v in stored[leg].items() if k != "latest"} for leg in ("leg1", "leg2")}
    replayed = codec.terms_from_json(old)
    assert replayed.leg2.latest is None
    assert replayed == replace(
        terms, leg1=replace(terms.leg1, latest=None), leg2=replace(terms.leg2, latest=None)
    )
    assert "S2 cannot be checked" in check_leg2_lock(replayed, T0)[0]
