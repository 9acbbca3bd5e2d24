"""The event log's hash chain: one canonical serialisation, shared by the writer and the audit.

hash = sha256(canonical JSON of [tag, seq, swap_id, kind, status, payload, created_at, prev_hash]),
where ``payload`` is the stored canonical JSON text itself (so any edit to it, even whitespace, breaks
the chain) and ``created_at`` is ISO-8601 UTC with microseconds. The first event's prev_hash is
``GENESIS_HASH``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .timestamps import canonical_timestamp

GENESIS_HASH = "0" * 64
HASH_TAG = "settlerd-event-v1"  # versioned so a future serialisation cannot collide with this one


def canonical_json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def event_hash(
    *,
    seq: int,
    swap_id: str | None,
    kind: str,
    status: str | None,
    payload: str,
    created_at: datetime,
    prev_hash: str,
) -> str:
    doc = [HASH_TAG, seq, swap_id, kind, status, payload, canonical_timestamp(created_at), prev_hash]
    data = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()
