"""The swap engine: trade capture, stepping live swaps on chain events and ticks, write-ahead actions."""

from .capture import Capture, CaptureError, CaptureSettings, LegRequest, OfferRequest
from .documents import DocumentError, NodeKey
from .engine import Engine, UnknownSwap
from .risk import Limits

__all__ = [
    "Capture",
    "CaptureError",
    "CaptureSettings",
    "DocumentError",
    "Engine",
    "LegRequest",
    "Limits",
    "NodeKey",
    "OfferRequest",
    "UnknownSwap",
]
