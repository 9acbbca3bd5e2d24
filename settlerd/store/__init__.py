"""Persistent state: swaps, legs, signed transactions, chain cursors and the hash-chained event log."""

from .errors import Conflict, HashlockInUse, NotFound, SchemaTooNew, StoreError
from .hashchain import GENESIS_HASH, canonical_json, event_hash
from .migrations import LATEST_VERSION
from .rows import ChainHead, Event, Leg, SignedTxRecord, Swap, TxStatus
from .store import Store
from .writer import WriteTx

__all__ = [
    "GENESIS_HASH",
    "LATEST_VERSION",
    "ChainHead",
    "Conflict",
    "Event",
    "HashlockInUse",
    "Leg",
    "NotFound",
    "SchemaTooNew",
    "SignedTxRecord",
    "Store",
    "StoreError",
    "Swap",
    "TxStatus",
    "WriteTx",
    "canonical_json",
    "event_hash",
]
