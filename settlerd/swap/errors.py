"""Why the state machine refused an input. Chain events and ticks are never refused: the chain is
what it is."""

from __future__ import annotations


class SwapError(Exception):
    """Base class of everything the swap module raises on purpose."""


class UnsafeTerms(SwapError):
    """The terms break the timelock policy or are incomplete; no swap is created from them."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("unsafe swap terms: " + "; ".join(reasons))
        self.reasons = reasons


class TermsMismatch(SwapError):
    """An acceptance whose terms are not the offer's: refuse it and ask the counterparty to re-accept."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("acceptance does not match the offer: " + "; ".join(reasons))
        self.reasons = reasons


class UnexpectedEvent(SwapError):
    """A trade-capture request or an engine result that does not fit the swap's state."""


class CancelRefused(UnexpectedEvent):
    """Our funds are (or may be) locked: the swap can only end by claim or refund now."""


class IllegalTransition(SwapError):
    """A status change missing from the transition table: a defect in this module, never the input's fault."""
