"""How long a number of blocks takes to mine: the bounds behind every height timelock's wall-clock times.

Proof-of-work blocks arrive as a Poisson process: intervals are exponential with the chain's mean block
interval, and the time to mine ``n`` more blocks from any moment is Gamma(n, interval), whatever happened
before that moment. A height timelock therefore opens at a random time; settlerd states both ends of it at a
tail probability ``p``: the earliest time (it opens sooner with probability at most ``p``) and the latest
(later, at most ``p``). The quantiles are exact, from the regularized incomplete gamma function.

Local test chains mined on a timer are not Poisson: ``steady`` arrivals give the interval a fixed slack.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_TIMELOCK_PROBABILITY = 1e-6  # each bound is wrong with at most this probability

# A timer-driven local miner keeps its cadence within a tenth: its sleep plus the time to mine a block.
STEADY_SLACK = 0.1

_EPS = 1e-15
_TINY = 1e-300
_MAX_TERMS = 100_000  # the series and the continued fraction converge in O(sqrt(n)) terms
_BISECTIONS = 200  # halvings of the bracket: far past double precision
_MAX_BLOCKS = 10_000_000  # no timelock is this many blocks ahead: a bound on the search


class Arrivals(enum.StrEnum):
    RANDOM = "random"  # a proof-of-work chain: exponential intervals (Bitcoin, its test networks)
    STEADY = "steady"  # a local chain mined on a timer, every ``block_interval`` within STEADY_SLACK


def _log_prefactor(a: float, x: float) -> float:
    return -x + a * math.log(x) - math.lgamma(a)


def _lower_series(a: float, x: float) -> float:
    """P(a, x) by its power series; accurate (also when tiny) for x < a + 1."""
    term = total = 1.0 / a
    denominator = a
    for _ in range(_MAX_TERMS):
        denominator += 1.0
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _EPS:
            return total * math.exp(_log_prefactor(a, x))
    raise ArithmeticError(f"the incomplete gamma series did not converge for a={a}, x={x}")


def _upper_fraction(a: float, x: float) -> float:
    """Q(a, x) = 1 - P(a, x) by its continued fraction (modified Lentz); accurate for x >= a + 1."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_TERMS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return math.exp(_log_prefactor(a, x)) * h
    raise ArithmeticError(f"the incomplete gamma fraction did not converge for a={a}, x={x}")


def gamma_cdf(a: float, x: float) -> float:
    """P(a, x): the probability that a Gamma(a, 1) variable is at most ``x``."""
    if x <= 0.0:
        return 0.0
    return _lower_series(a, x) if x < a + 1.0 else 1.0 - _upper_fraction(a, x)


def gamma_sf(a: float, x: float) -> float:
    """Q(a, x): the probability that a Gamma(a, 1) variable exceeds ``x``."""
    if x <= 0.0:
        return 1.0
    return 1.0 - _lower_series(a, x) if x < a + 1.0 else _upper_fraction(a, x)


def _bisect(a: float, too_low: Callable[[float], bool]) -> tuple[float, float]:
    """A bracket (low, high) around where ``too_low`` turns false, as narrow as doubles allow."""
    low, high = 0.0, a + 10.0 * math.sqrt(a) + 50.0
    while too_low(high):
        high *= 2.0
    for _ in range(_BISECTIONS):
        middle = (low + high) / 2.0
        if middle in (low, high):
            break
        low, high = (middle, high) if too_low(middle) else (low, middle)
    return low, high


def _cdf_below(a: float, p: float, x: float) -> bool:
    return gamma_cdf(a, x) < p


def _sf_above(a: float, p: float, x: float) -> bool:
    return gamma_sf(a, x) > p


@functools.lru_cache(maxsize=4096)
def gamma_quantiles(a: float, p: float) -> tuple[float, float]:
    """(x_low, x_high) with P(a, x_low) <= p and Q(a, x_high) <= p, each tight to double precision.

    Both tails are computed directly (not as 1 - the other), so a tail of 1e-6 or 1e-12 is exact.
    """
    if not 0.0 < p < 0.5:
        raise ValueError(f"the tail probability must be between 0 and 0.5, got {p}")
    low, _ = _bisect(a, functools.partial(_cdf_below, a, p))  # the largest x seen with P(a, x) < p
    _, high = _bisect(a, functools.partial(_sf_above, a, p))  # the smallest x seen with Q(a, x) <= p
    return low, high


@dataclass(frozen=True, slots=True)
class BlockTimes:
    """The time to mine ``n`` more blocks, bounded on both sides."""

    interval: float  # mean seconds between blocks
    probability: float = DEFAULT_TIMELOCK_PROBABILITY
    arrivals: Arrivals = Arrivals.RANDOM

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError(f"block_interval must be positive, got {self.interval}")
        if not 0 < self.probability < 0.5:
            raise ValueError(f"timelock_probability must be between 0 and 0.5, got {self.probability}")

    def bounds(self, blocks: int) -> tuple[float, float]:
        """(earliest, latest) seconds until ``blocks`` more blocks are mined, from any moment."""
        if blocks <= 0:
            return 0.0, 0.0
        if self.arrivals is Arrivals.STEADY:
            nominal = blocks * self.interval
            return nominal * (1.0 - STEADY_SLACK), nominal * (1.0 + STEADY_SLACK)
        low, high = gamma_quantiles(float(blocks), self.probability)
        return low * self.interval, high * self.interval

    def blocks_for(self, seconds: float) -> int:
        """The fewest blocks (at least one) whose earliest bound is ``seconds`` or later."""
        if seconds <= 0:
            return 1
        low, high = 1, max(1, math.ceil(seconds / self.interval))
        while self.bounds(high)[0] < seconds:
            low, high = high, high * 2
            if high > _MAX_BLOCKS:
                raise ValueError(f"{seconds:.0f} s is too far ahead for a height timelock")
        while low < high:  # the earliest bound grows with the number of blocks
            middle = (low + high) // 2
            low, high = (middle + 1, high) if self.bounds(middle)[0] < seconds else (low, middle)
        return low
