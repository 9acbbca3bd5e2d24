"""What the executor, the risk check and the live checks see of the engine: narrow collaborators.

They get the store, the adapters, the clock, a read-only view of the live swaps and a way to report a
result as a step, never the engine itself: nothing in ``engine/`` imports the engine but its users.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from settlerd import swap

from .records import LiveSwap

Clock = Callable[[], datetime]

# The engine's registry of live swaps by id, read-only; a swap leaves it when it ends.
LiveSwaps = Mapping[str, LiveSwap]

# Step a swap with an engine result (LockBroadcast, LockRefused, ...): persist it, then act on it.
Apply = Callable[[str, swap.Event], Awaitable[object]]
