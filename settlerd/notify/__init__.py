"""MQTT publisher: the event log and each swap's status document, in sequence order, resumable."""

from .cursor import acked_seq
from .publisher import run
from .topics import events_topic, online_topic, swap_topic

__all__ = ["acked_seq", "events_topic", "online_topic", "run", "swap_topic"]
