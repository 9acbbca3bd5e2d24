"""How many event streams may be open: per token and in total, so streams cannot use up the descriptors.

Each open SSE stream holds a socket for as long as the client likes. Unbounded, a read token alone could
open enough of them to exhaust the process's file descriptors; the store, the chain nodes' RPC and new
connections then fail, and the daemon with them. Streams past a token's share get 429, past the total
503, both with Retry-After; the rest of the descriptors stay for everything else.
"""

from __future__ import annotations

import contextlib
import resource
from collections import Counter
from collections.abc import Iterator

from settlerd.config import ApiSettings

from .errors import ApiError

# Descriptors kept for everything but streams: the store's connections and WAL files, the chain nodes'
# RPC pools, MQTT, the listening socket, the log, and ordinary API requests in flight.
DESCRIPTOR_RESERVE = 512
# What a refused client waits before trying again: long enough that retries cost little.
RETRY_AFTER_S = 30


class StreamSlots:
    def __init__(self, per_token: int, total: int) -> None:
        self.per_token = per_token
        self.total = total
        self._open: Counter[str] = Counter()

    @property
    def open(self) -> int:
        return self._open.total()

    @contextlib.contextmanager
    def hold(self, token: str) -> Iterator[None]:
        """One slot for ``token`` (a token's name) while the stream is open; ApiError if none is free."""
        retry = {"Retry-After": str(RETRY_AFTER_S)}
        if self._open[token] >= self.per_token:
            raise ApiError(
                429,
                f"token {token!r} has {self._open[token]} event streams open, the most allowed "
                "(api.max_streams_per_token); close one first",
                "Authorization",
                retry,
            )
        if self.open >= self.total:
            raise ApiError(
                503, f"{self.open} event streams are open, the most allowed (api.max_streams)", None, retry
            )
        self._open[token] += 1
        try:
            yield
        finally:
            self._open[token] -= 1
            if not self._open[token]:
                del self._open[token]


def fit_descriptors(api: ApiSettings) -> str | None:
    """Raise the soft descriptor limit to the hard one, then say what is wrong if the stream caps do not
    fit under it with DESCRIPTOR_RESERVE to spare (None when they do)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        # Under systemd, setrlimit is filtered: LimitNOFILE= sets both limits there instead.
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    if soft == resource.RLIM_INFINITY or api.max_streams + DESCRIPTOR_RESERVE <= soft:
        return None
    return (
        f"api.max_streams: {api.max_streams} event streams plus {DESCRIPTOR_RESERVE} descriptors kept "
        f"for the store, nodes and requests need {api.max_streams + DESCRIPTOR_RESERVE}, but the open "
        f"files limit is {soft}: lower api.max_streams to {max(soft - DESCRIPTOR_RESERVE, 0)} or raise "
        "the limit (LimitNOFILE= in the unit, ulimit -n)"
    )
