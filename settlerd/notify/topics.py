"""The MQTT topics, one place: venues subscribe to these names, so they are part of the API."""

from __future__ import annotations

ROOT = "settlerd/v1"


def swap_topic(node_id: str, swap_id: str) -> str:
    """Retained: the swap's current status document plus the ``seq`` it was published for."""
    return f"{ROOT}/{node_id}/swaps/{swap_id}"


def events_topic(node_id: str) -> str:
    """Every event of the log, in ``seq`` order, not retained."""
    return f"{ROOT}/{node_id}/events"


def online_topic(node_id: str) -> str:
    """Retained ``true`` while the publisher is connected; the broker's last will sets ``false``."""
    return f"{ROOT}/{node_id}/online"
