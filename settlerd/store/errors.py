"""The store's exceptions: one type the daemon can print as a single line and exit on."""

from __future__ import annotations


class StoreError(Exception):
    """The database cannot be opened or used; the message names the database and what to do."""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer settlerd than this one."""


class NotFound(StoreError, LookupError):
    """A row the caller named does not exist."""


class Conflict(StoreError):
    """A row was not in the state the caller expected (another writer moved it first)."""


class HashlockInUse(Conflict):
    """A hashlock already backs another swap here: one lock on chain must never count for two swaps."""

    def __init__(self, message: str, other_swap: str | None = None) -> None:
        super().__init__(message)
        self.other_swap = other_swap
